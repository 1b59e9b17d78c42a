"""What FA's squeeze-excitation and axial attention do, averaged over each regime.

:func:`mechanism_maps` inspects the first FAConvLSTM2D layer of a trained run
(:meth:`FAConvLSTM2D.inspect`) on every timestep's center window and averages per cluster:
the squeeze-excitation weight of each bottleneck channel, and the map of attention each grid
cell received. The input projection says which variables feed each bottleneck channel.
"""

from __future__ import annotations

import keras
import numpy as np
import xarray as xr

from faconvlstm.errors import InputError
from faconvlstm.layers import FAConvLSTM2D
from faconvlstm.pipeline.embedding import TrainedRun

#: The channel the model appends to mark valid cells; it feeds the input projection too.
VALIDITY_CHANNEL = "validity"


def _latest_attended(steps: int, attended: list[int]) -> np.ndarray:
    """For each step, the index into ``attended`` of the latest attended step at or before it
    (-1 before the first): the attention that last shaped that step's hidden state. ``(T,)``."""
    return np.searchsorted(np.asarray(attended), np.arange(steps), side="right") - 1


def _inspect_batch(model_input: keras.Model, layer: FAConvLSTM2D, batch: dict) -> dict:
    """Per-step SE weights ``(B, T, r)`` and attention ``(B, T, H', W')`` (NaN before any)."""
    inspected = layer.inspect(model_input.predict_on_batch(batch))
    result = {}
    if inspected["channel_weights"] is not None:
        result["channel_weights"] = keras.ops.convert_to_numpy(inspected["channel_weights"])
    if inspected["attention"] is not None:
        maps = keras.ops.convert_to_numpy(inspected["attention"])
        latest = _latest_attended(batch["frames"].shape[1], inspected["attention_steps"])
        per_step = maps[:, np.maximum(latest, 0)]
        per_step[:, latest < 0] = np.nan
        result["attention"] = per_step
    return result


def _cluster_means(values: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """NaN-ignoring mean of ``values (time, ...)`` over the timesteps of each cluster."""
    means = []
    for cluster in range(k):
        members = values[labels == cluster]
        finite = np.isfinite(members).all(axis=tuple(range(1, members.ndim)))
        means.append(members[finite].mean(axis=0) if finite.any() else
                     np.full(values.shape[1:], np.nan))
    return np.stack(means)


def _check_run(run: TrainedRun, fields: xr.DataArray, labels: np.ndarray) -> None:
    if run.config.cell != "fa":
        raise InputError(
            f"The run in '{run.run_dir}' uses the {run.config.cell!r} cell; squeeze-excitation "
            "weights and attention maps exist only for FAConvLSTM2D runs (cell 'fa')."
        )
    if len(labels) != fields.sizes["time"]:
        raise InputError(
            f"labels has {len(labels)} entries but the data {fields.sizes['time']} timesteps."
        )


def _relative_attention(attention: np.ndarray, halo: int) -> np.ndarray:
    """Attention ``(time, H', W')`` relative to uniform, without the ``halo`` cells of padding."""
    attention = attention * (attention.shape[1] * attention.shape[2])
    return attention[:, halo:-halo, halo:-halo] if halo else attention


def mechanism_maps(
    run: TrainedRun,
    fields: xr.DataArray,
    labels: np.ndarray,
    k: int,
    batch_size: int = 8,
) -> xr.Dataset:
    """SE channel weights and received attention of a loaded FA run, averaged per cluster.

    ``fields``: ``(time, lat, lon, channel)`` in physical units; ``labels``: the cluster of
    each timestep ``(time,)``, -1 for none. Returns a Dataset with

    - ``channel_weights`` ``(cluster, bottleneck)``: the mean SE scale, in ``(0, 1)``;
    - ``attention`` ``(cluster, lat, lon)``: the mean attention each cell received relative to
      uniform attention (1 = uniform), from the latest attended step of each timestep;
    - ``projection`` ``(channel, bottleneck)``: the input projection of the layer, the
      variables (and the validity channel) feeding each bottleneck channel;

    either of the first two absent when the run switched that mechanism off.
    """
    _check_run(run, fields, labels)
    layer = run.autoencoder.get_layer("encoder_0")
    model_input = keras.Model(run.autoencoder.inputs, layer.input)
    values = run.per_timestep(
        fields, lambda batch: _inspect_batch(model_input, layer, batch), batch_size
    )
    labels = np.asarray(labels)
    channels = [*map(str, fields["channel"].values), VALIDITY_CHANNEL]
    dataset = xr.Dataset(
        {
            "projection": (
                ("channel", "bottleneck"),
                keras.ops.convert_to_numpy(layer.cell.input_path.projection),
                {"long_name": "input projection of the first FAConvLSTM2D layer"},
            )
        },
        coords={"cluster": np.arange(k), "bottleneck": np.arange(layer.bottleneck),
                "channel": channels},
        attrs={"run_dir": str(run.run_dir.resolve())},
    )
    if "channel_weights" in values:
        dataset["channel_weights"] = (
            ("cluster", "bottleneck"),
            _cluster_means(values["channel_weights"], labels, k),
            {"long_name": "mean squeeze-excitation weight", "units": "1"},
        )
    if "attention" in values:
        attention = _relative_attention(values["attention"], run.config.global_halo)
        dataset["attention"] = xr.DataArray(
            _cluster_means(attention, labels, k),
            dims=("cluster", "lat", "lon"),
            coords={"lat": fields["lat"], "lon": fields["lon"]},
            attrs={"long_name": "attention received relative to uniform", "units": "1"},
        )
    return dataset
