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
from xeofs.single import EOF

from faconvlstm.data.preprocessing import check_fields
from faconvlstm.errors import InputError
from faconvlstm.pipeline.clustering import kmeans
from faconvlstm.pipeline.embedding import EMBEDDING_VARIABLE
from faconvlstm.validation import positive_int


def _check_same_grid(train_fields: xr.DataArray, fields: xr.DataArray) -> None:
    for axis in ("lat", "lon", "channel"):
        fitted, given = train_fields[axis].values, fields[axis].values
        if fitted.shape != given.shape or not np.array_equal(fitted, given):
            raise InputError(
                f"The fields' {axis} axis differs from the training fields' ({given.size} vs "
                f"{fitted.size} values); expected the same grid and channels."
            )


def _check_count(value: int, name: str, largest: int) -> int:
    """``value`` as a positive int of at most ``largest``; InputError otherwise."""
    value = positive_int(value, name)
    if value > largest:
        raise InputError(f"`{name}` is {value}, more than the data allow ({largest}).")
    return value


def _valid_training_fields(train_fields: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """The training times with any valid value, and the features valid at all of them."""
    observed = train_fields.notnull().any(("lat", "lon", "channel")).compute()
    if not observed.any():
        raise InputError("The training fields have no valid value; expected preprocessed fields.")
    train_fields = train_fields.isel(time=observed.values)
    valid = train_fields.notnull().all("time").compute()
    if not valid.any():
        raise InputError("No cell and channel is valid at every training time; nothing to analyze.")
    return train_fields, valid


def _fit_transform(model: EOF, train_fields: xr.DataArray, fields: xr.DataArray) -> xr.DataArray:
    """Fit ``model`` on ``train_fields`` and return the PCs of ``fields`` ``(time, mode)``."""
    with warnings.catch_warnings():
        # xeofs 3.0 calls xarray APIs that recent xarray flags as deprecated; not ours to act on.
        for category in (FutureWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module="xeofs")
        model.fit(train_fields, dim="time")
        return model.transform(fields).transpose("time", "mode")


def _eof_dataset(
    model: EOF, scores: xr.DataArray, fields: xr.DataArray, training_steps: int
) -> xr.Dataset:
    patterns = model.components().transpose("mode", "lat", "lon", "channel")
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
                model.explained_variance_ratio().values,
                {"long_name": "fraction of the training variance explained by each EOF"},
            ),
        },
        coords={axis: fields[axis] for axis in ("time", "lat", "lon", "channel")},
        attrs={
            "title": "EOF principal components", "weighting": "sqrt(cos(lat))",
            "training_steps": training_steps,
        },
    )


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
    space) and ``explained_variance_ratio (embedding)`` of the training fields, largest first;
    the attribute ``training_steps`` is the number of training times the EOFs were fitted on.
    """
    check_fields(train_fields)
    check_fields(fields)
    _check_same_grid(train_fields, fields)
    train_fields, valid = _valid_training_fields(train_fields)
    largest = min(train_fields.sizes["time"] - 1, int(valid.sum()))
    n_modes = _check_count(n_modes, "n_modes", largest)
    train_fields = train_fields.astype("float64").where(valid)
    filled = fields.astype("float64").fillna(train_fields.mean("time")).where(valid)
    model = EOF(n_modes=n_modes, use_coslat=True, random_state=0)
    scores = _fit_transform(model, train_fields, filled)
    return _eof_dataset(model, scores, fields, int(train_fields.sizes["time"]))


def separated_modes(explained_variance: np.ndarray, samples: int) -> np.ndarray:
    """Whether each EOF stands apart from its neighbours: ``(modes,)`` bool.

    North's rule of thumb: an eigenvalue ``l`` estimated from ``samples`` independent samples
    has a sampling error of about ``l * sqrt(2 / samples)``; a mode whose gap to the previous
    or the next eigenvalue is no larger mixes with that neighbour, so its pattern and PC are
    not determined by the data (the last mode is compared with the previous one only). Serial
    correlation lowers the effective sample count, so with ``samples`` the number of
    timesteps the test is lenient.
    """
    values = np.asarray(explained_variance, dtype="float64")
    error = values * np.sqrt(2.0 / positive_int(samples, "samples"))
    gap_before = np.concatenate([[np.inf], values[:-1] - values[1:]])
    gap_after = np.concatenate([values[:-1] - values[1:], [np.inf]])
    return (gap_before > error) & (gap_after > error)


def component_regimes(components: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """KMeans regimes (``k`` clusters, the package's :func:`kmeans`) of ``components (N, d)``.
    ``(N,)``."""
    k = _check_count(k, "k", len(components))
    return kmeans(k, seed).fit_predict(components)


def eof_regimes(
    train_fields: xr.DataArray, fields: xr.DataArray, n_modes: int, k: int, seed: int = 0
) -> np.ndarray:
    """KMeans regimes of ``fields`` on its leading ``n_modes`` EOF principal components. ``(N,)``.

    The field's standard regime baseline: EOFs fitted on ``train_fields`` (see
    :func:`eof_embeddings`), then KMeans (``k`` clusters, 10 initializations, ``seed``) on the
    principal components of ``fields``, as the pipeline's ``cluster`` does on the embeddings.
    """
    components = eof_embeddings(train_fields, fields, n_modes)[EMBEDDING_VARIABLE].values
    return component_regimes(components, k, seed)
