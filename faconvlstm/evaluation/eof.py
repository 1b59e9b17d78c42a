"""The field's standard baseline: EOF principal components and KMeans regimes on them.

EOF analysis (PCA of the anomaly fields with ``sqrt(cos(lat))`` weights, so that each cell
counts by its area) is done by ``xeofs`` (``xeofs.single.EOF``), the field's xarray-native EOF
package. Its leading principal components are an embedding of the same size as the model's,
and KMeans on them gives the regimes that the model's regimes are compared against.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from sklearn.cluster import KMeans
from xeofs.single import EOF

from faconvlstm.data.preprocessing import check_fields
from faconvlstm.pipeline.embedding import EMBEDDING_VARIABLE


def _check_same_grid(train_fields: xr.DataArray, fields: xr.DataArray) -> None:
    for axis in ("lat", "lon", "channel"):
        fitted, given = train_fields[axis].values, fields[axis].values
        if fitted.shape != given.shape or not np.array_equal(fitted, given):
            raise ValueError(
                f"The fields' {axis} axis differs from the training fields' ({given.size} vs "
                f"{fitted.size} values); expected the same grid and channels."
            )


def _check_positive_int(value: int, name: str, largest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    if value > largest:
        raise ValueError(f"`{name}` is {value}, more than the data allow ({largest}).")
    return int(value)


def eof_embeddings(train_fields: xr.DataArray, fields: xr.DataArray, n_modes: int) -> xr.Dataset:
    """Leading EOF principal components of ``fields``, with EOFs fitted on ``train_fields``.

    Both are preprocessed fields (standardized anomalies, NaN invalid) on the same grid. A
    feature (cell and channel) that is NaN at any training time is left out of the analysis,
    like a land mask, and is NaN in the patterns; training times with no valid value at all
    (missing days) are skipped. A NaN in ``fields`` at a feature valid in training is filled
    with that feature's training mean (about 0 for standardized anomalies), so it adds nothing
    to the principal components.

    Returns a Dataset in the format of the pipeline's ``embed``: ``embeddings (time, embedding)``
    (the principal components, in the units of the weighted fields) with the time coordinate of
    ``fields``, plus the patterns ``eofs (embedding, lat, lon, channel)`` (unit norm in weighted
    space) and ``explained_variance_ratio (embedding)`` of the training fields, largest first.
    """
    check_fields(train_fields)
    check_fields(fields)
    _check_same_grid(train_fields, fields)
    observed = train_fields.notnull().any(("lat", "lon", "channel")).compute()
    if not observed.any():
        raise ValueError("The training fields have no valid value; expected preprocessed fields.")
    train_fields = train_fields.isel(time=observed.values)
    valid = train_fields.notnull().all("time").compute()
    if not valid.any():
        raise ValueError("No cell and channel is valid at every training time; nothing to analyse.")
    n_modes = _check_positive_int(
        n_modes, "n_modes", min(train_fields.sizes["time"] - 1, int(valid.sum()))
    )
    train_fields = train_fields.astype("float64").where(valid)
    filled = fields.astype("float64").fillna(train_fields.mean("time")).where(valid)
    model = EOF(n_modes=n_modes, use_coslat=True, random_state=0)
    with warnings.catch_warnings():
        # xeofs 3.0 calls xarray APIs that recent xarray flags as deprecated; not ours to act on.
        for category in (FutureWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module="xeofs")
        model.fit(train_fields, dim="time")
        scores = model.transform(filled).transpose("time", "mode")
    patterns = model.components().transpose("mode", "lat", "lon", "channel")
    ratios = model.explained_variance_ratio()
    return xr.Dataset(
        {
            EMBEDDING_VARIABLE: (
                ("time", "embedding"),
                scores.values.astype("float32"),
                {"long_name": "EOF principal component", "units": "1"},
            ),
            "eofs": (
                ("embedding", "lat", "lon", "channel"),
                patterns.values.astype("float32"),
                {"long_name": "EOF pattern (unit norm, sqrt(cos(lat)) weighted)", "units": "1"},
            ),
            "explained_variance_ratio": (
                ("embedding",),
                ratios.values,
                {"long_name": "fraction of the training variance explained by each EOF"},
            ),
        },
        coords={
            "time": fields["time"],
            "lat": fields["lat"],
            "lon": fields["lon"],
            "channel": fields["channel"],
        },
        attrs={"title": "EOF principal components", "weighting": "sqrt(cos(lat))"},
    )


def eof_regimes(
    train_fields: xr.DataArray, fields: xr.DataArray, n_modes: int, k: int, seed: int = 0
) -> np.ndarray:
    """KMeans regimes of ``fields`` on its leading ``n_modes`` EOF principal components. ``(N,)``.

    The field's standard regime baseline: EOFs fitted on ``train_fields`` (see
    :func:`eof_embeddings`), then KMeans (``k`` clusters, 10 initialisations, ``seed``) on the
    principal components of ``fields``, as the pipeline's ``cluster`` does on the embeddings.
    """
    components = eof_embeddings(train_fields, fields, n_modes)[EMBEDDING_VARIABLE].values
    k = _check_positive_int(k, "k", len(components))
    return KMeans(k, n_init=10, random_state=seed).fit_predict(components)
