"""The model that learns per-timestep embeddings of gridded multivariate fields.

``frames + validity -> recurrent encoder -> [features, frames] -> SubspaceHead ->
causal TemporalSelfAttention -> z_t``; then ``z_t -> LatentLeads -> FrameDecoder`` gives the
reconstruction of step t and forecasts of steps t+1..t+h, trained with the masked,
area-weighted MSE at every lead. Every part is causal (``z_t`` depends on steps ``<= t``
only), so the forecasts cannot copy the future and ``z_t`` must carry the state of the
system: what one frame shows and what only its history does. With ``cell="convlstm"`` the
encoder is ``keras.layers.ConvLSTM2D`` and everything else identical, the twin the
evaluation compares against.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers, ops

from faconvlstm import validation
from faconvlstm.errors import InputError
from faconvlstm.layers import (
    FAConvLSTM2D,
    SeasonalPositionalEncoding,
    SubspaceHead,
    TemporalSelfAttention,
)
from faconvlstm.models.decoder import UPSAMPLING, FrameDecoder
from faconvlstm.models.forecast import DYNAMICS, LatentLeads
from faconvlstm.models.losses import MaskedLeadLoss

#: The layer whose added loss is the masked error of the reconstruction and the forecasts.
RECONSTRUCTION_LAYER = "reconstruction"

#: The recurrent layers are named this followed by their index, from the input.
ENCODER_PREFIX = "encoder_"
CELLS = ("fa", "convlstm")
#: Keras dtype policies of the recurrent encoder and the decoder (the costly parts). The
#: head, the temporal attention, the embedding and the loss always compute in float32.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
MIN_GRID = UPSAMPLING
#: The forecast horizon when none is given (the pipeline chooses one by the data's time step).
DEFAULT_HORIZON = 6


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the model's architecture (saved with every run).

    ``layer_options`` go to each ``FAConvLSTM2D`` (e.g. ``{"attention_every": 0}`` for an
    ablation); they are ignored by the ConvLSTM2D twin. ``global_halo > 0`` marks a global
    grid: the encoder's input is padded by that many cells, circularly in longitude and by
    reflection in latitude, and its output cropped back, so the recurrent convolutions see
    across the dateline and over the poles instead of zeros. ``harmonics=0`` drops the seasonal
    part of the positional encoding; ``temporal_attention=False`` drops the whole block, and
    ``temporal_gates`` starts its residual branches at zero (the block starts as the identity).
    ``input_skip`` lets the subspace head see the (masked) input frames beside the encoder's
    features; ``encoder=False`` drops the recurrent encoder, so the head sees the input
    frames alone (an ablation; it needs ``input_skip``). ``spatial_maps`` is the head's
    number of learned spatial maps. ``forecast_horizon = h`` trains ``z_t`` to reconstruct
    step t and to forecast steps t+1..t+h (0: reconstruction only; None:
    :data:`DEFAULT_HORIZON`, at most half the window), through latent maps of
    the kind ``forecast_dynamics`` names (:class:`~faconvlstm.models.forecast.LatentLeads`);
    the reconstruction takes ``reconstruction_share`` of the loss, the mean of the forecast
    leads the rest (:class:`~faconvlstm.models.losses.MaskedLeadLoss`).
    The decoder is an expansion on learned patterns (``decoder_patterns``) plus, with
    ``decoder_filters > 0``, a nonlinear convolutional branch of that width; it needs at
    least one of them. ``precision`` is one of :data:`PRECISIONS`.
    """

    channels: int
    grid: tuple[int, int]
    window: int = 16
    filters: tuple[int, ...] = (16, 16)
    kernel_size: int = 3
    cell: str = "fa"
    layer_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    embedding_dim: int = 16
    orthogonality: float = 1e-2
    temporal_attention: bool = True
    temporal_gates: bool = True
    harmonics: int = 3
    position_dim: int = 8
    attention_heads: int = 2
    decoder_filters: int = 0
    spatial_maps: int = 16
    decoder_patterns: bool = True
    input_skip: bool = True
    encoder: bool = True
    forecast_horizon: int | None = None
    forecast_dynamics: str = "per-lead"
    reconstruction_share: float = 0.5
    global_halo: int = 0
    precision: str = "float32"

    def __post_init__(self):
        for name in ("channels", "window", "kernel_size", "embedding_dim"):
            object.__setattr__(self, name, validation.positive_int(getattr(self, name), name))
        object.__setattr__(self, "grid", validation.positive_pair(self.grid, "grid"))
        object.__setattr__(self, "filters", _filter_tuple(self.filters))
        if self.cell not in CELLS:
            raise InputError(f"cell must be one of {CELLS}; got {self.cell!r}.")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}; got {self.precision!r}.")
        if min(self.grid) < MIN_GRID:
            raise InputError(
                f"The grid {self.grid[0]}x{self.grid[1]} is too small for the model; expected "
                f"at least {MIN_GRID}x{MIN_GRID} cells."
            )
        halo = validation.non_negative_int(self.global_halo, "global_halo")
        if halo >= min(self.grid):
            raise InputError(
                f"global_halo must be in [0, {min(self.grid)}) for a {self.grid} grid; got "
                f"{halo}."
            )
        object.__setattr__(self, "global_halo", halo)
        for name in ("decoder_filters", "spatial_maps"):
            object.__setattr__(self, name, validation.non_negative_int(getattr(self, name), name))
        self._check_objective()
        if not (self.decoder_filters or self.decoder_patterns):
            raise InputError(
                "The decoder needs its patterns (decoder_patterns=True) or a convolutional "
                "branch (decoder_filters > 0); got neither."
            )

    def _check_objective(self) -> None:
        horizon = self.forecast_horizon
        if horizon is None:
            horizon = min(DEFAULT_HORIZON, self.window // 2)
        horizon = validation.non_negative_int(horizon, "forecast_horizon")
        if horizon >= self.window:
            raise InputError(
                f"forecast_horizon must be below the window ({self.window} steps), so that "
                f"every lead has a target inside it; got {horizon}."
            )
        object.__setattr__(self, "forecast_horizon", horizon)
        if self.forecast_dynamics not in DYNAMICS:
            raise InputError(
                f"forecast_dynamics must be one of {DYNAMICS}; got {self.forecast_dynamics!r}."
            )
        if not (self.encoder or self.input_skip):
            raise InputError(
                "Without the encoder (encoder=False) the head needs the input frames "
                "(input_skip=True); got neither."
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"Unknown model settings {unknown}; expected some of {sorted(known)}.")
        return cls(**values)


def _filter_tuple(filters) -> tuple[int, ...]:
    """``filters`` as a non-empty tuple of positive ints; InputError otherwise."""
    if isinstance(filters, str) or not isinstance(filters, Sequence) or not filters:
        raise InputError(f"filters must be one or more positive integers; got {filters!r}.")
    return tuple(validation.positive_int(size, "filters") for size in filters)


def pad_globally(frames, halo: int):
    """Pad ``(B, T, H, W, C)`` by ``halo`` cells: circularly in longitude (axis 3) and by
    reflection in latitude (axis 2), as on a sphere, never with zeros or NaN."""
    frames = ops.concatenate([frames[:, :, :, -halo:], frames, frames[:, :, :, :halo]], axis=3)
    south = ops.flip(frames[:, :, 1 : halo + 1], axis=2)
    north = ops.flip(frames[:, :, -halo - 1 : -1], axis=2)
    return ops.concatenate([south, frames, north], axis=2)


def _recurrent_layer(config: ModelConfig, filters: int, index: int) -> layers.Layer:
    common = {
        "padding": "same",
        "return_sequences": True,
        "name": f"{ENCODER_PREFIX}{index}",
        "dtype": config.precision,
    }
    if config.cell == "convlstm":
        return layers.ConvLSTM2D(filters, config.kernel_size, **common)
    return FAConvLSTM2D(filters, config.kernel_size, **common, **config.layer_options)


def build_autoencoder(config: ModelConfig) -> keras.Model:
    """The trainable model; its loss is added inside, so compile it without one.

    Values at cells of weight 0 are ignored (zeroed) and a validity channel is appended, so
    whatever fills invalid cells cannot leak into the embedding. Inputs: a dict of
    ``"frames"`` (normalized, invalid cells set to 0) and ``"weights"`` (the per-cell loss
    weight: cos latitude where valid, 0 where not), both ``(B, T, H, W, C)``, and
    ``"year_fraction"``, the fraction of the calendar year of each step, ``(B, T)``.
    Outputs: ``{"embedding": (B, T, d), "reconstruction": (B, T, H, W, C)}`` and, with a
    forecast horizon ``h > 0``, ``"forecast": (B, T, h, H, W, C)``, the forecast of step
    ``t + k`` made at step ``t`` in ``[:, t, k - 1]``.
    """
    frame_shape = (config.window, *config.grid, config.channels)
    frames = keras.Input(frame_shape, name="frames")
    weights = keras.Input(frame_shape, name="weights")
    year_fraction = keras.Input((config.window,), name="year_fraction")

    valid = ops.cast(weights > 0, frames.dtype)
    features = []
    if config.encoder:
        features.append(_encoded(config, frames * valid, ops.max(valid, axis=-1, keepdims=True)))
    if config.input_skip:
        features.append(frames * valid)
    hidden = features[0] if len(features) == 1 else ops.concatenate(features, axis=-1)
    pooling_weights = ops.mean(weights, axis=-1)
    z = SubspaceHead(
        config.embedding_dim,
        projection_dim=max(config.filters[-1], math.ceil(config.embedding_dim / 2)),
        orthogonality=config.orthogonality,
        spatial_maps=config.spatial_maps,
        name="subspace_head",
    )([hidden, pooling_weights])
    if config.temporal_attention:
        encoding = SeasonalPositionalEncoding(
            config.harmonics, config.position_dim, name="positional_encoding"
        )(year_fraction)
        z = TemporalSelfAttention(
            config.attention_heads, causal=True, gated_residuals=config.temporal_gates,
            name="temporal_attention",
        )([z, encoding])
    embedding = layers.Identity(name="embedding", dtype="float32")(z)
    leads = LatentLeads(config.forecast_horizon, config.forecast_dynamics, name="leads",
                        dtype="float32")(embedding)
    decoded = FrameDecoder(
        config.grid, config.channels, config.decoder_filters, config.decoder_patterns,
        name="decoder", dtype=config.precision,
    )(leads)
    decoded = MaskedLeadLoss(config.reconstruction_share, name=RECONSTRUCTION_LAYER,
                             dtype="float32")(
        [decoded, frames, weights]
    )
    outputs = {"embedding": embedding, "reconstruction": decoded[:, :, 0]}
    if config.forecast_horizon:
        outputs["forecast"] = decoded[:, :, 1:]
    inputs = {"frames": frames, "weights": weights, "year_fraction": year_fraction}
    return keras.Model(inputs, outputs, name=f"{config.cell}_autoencoder")


def _encoded(config: ModelConfig, frames, any_valid):
    """The recurrent encoder's features ``(B, T, H, W, F)`` of masked frames and their
    validity channel; on a global grid padded around the sphere, then cropped back."""
    hidden = ops.concatenate([frames, any_valid], axis=-1)
    halo = config.global_halo
    if halo:
        hidden = pad_globally(hidden, halo)
    for index, filters in enumerate(config.filters):
        hidden = _recurrent_layer(config, filters, index)(hidden)
    if halo:
        hidden = hidden[:, :, halo:-halo, halo:-halo, :]
    return hidden


#: Measured peak training memory over the count of :func:`training_memory_bytes`' terms, by
#: (backend, cell), rounded up (CPU, batch 4, 8 steps; ``benchmarks/memory_estimate.py``,
#: figures in BENCHMARKS.md): PyTorch 1.2-1.5 (FA) and 3.0-3.2 (ConvLSTM2D) on 16x24 to 64x96
#: grids; JAX 1.4-1.9 (ConvLSTM2D) and, above the fixed memory, 0.2-0.6 for FA, growing with
#: the grid (its cell step is rematerialized: the scan keeps only each step's inputs and
#: states).
MEMORY_OVERHEAD = {
    ("torch", "fa"): 1.8, ("torch", "convlstm"): 3.5, ("jax", "fa"): 1.5, ("jax", "convlstm"): 2.0,
}
#: Memory a training step takes whatever the size (allocator pools, compiled programs); the
#: PyTorch figure is the measured ~25 MiB with a margin.
FIXED_MEMORY = {"torch": 64 * 2**20, "jax": 512 * 2**20}


def training_memory_bytes(config: ModelConfig, batch_size: int) -> int:
    """Estimated peak memory of one training step on ``batch_size`` windows, on this backend.

    Counts the values each cell and step keeps for the backward pass (inputs, each recurrent
    layer's bottleneck and gate tensors, the decoder and the loss), scaled by the measured
    :data:`MEMORY_OVERHEAD`, plus :data:`FIXED_MEMORY`; weights and optimizer state are
    negligible beside them. Other backends get the largest factors. The FA layers' bottleneck
    and dilations are those the layers themselves take from ``layer_options``.
    """
    batch_size = validation.positive_int(batch_size, "batch_size")
    per_cell = 3 * config.channels + 1
    for index, filters in enumerate(config.filters if config.encoder else ()):
        if config.cell == "convlstm":
            per_cell += 15 * filters
        else:
            layer = _recurrent_layer(config, filters, index)
            per_cell += (4 + len(layer.multiscale_dilations)) * layer.bottleneck + 11 * filters
    leads = 1 + config.forecast_horizon
    per_cell += leads * (2 * config.decoder_filters + 4 * config.channels)
    bytes_per_value = 4 if config.precision == "float32" else 2
    cells = batch_size * config.window * config.grid[0] * config.grid[1]
    backend = keras.backend.backend()
    overhead = MEMORY_OVERHEAD.get((backend, config.cell), max(MEMORY_OVERHEAD.values()))
    fixed = FIXED_MEMORY.get(backend, max(FIXED_MEMORY.values()))
    return int(overhead * per_cell * cells * bytes_per_value) + fixed


def encoder_layers(autoencoder: keras.Model) -> list[layers.Layer]:
    """The recurrent layers of an autoencoder from :func:`build_autoencoder`, input first."""
    return [layer for layer in autoencoder.layers if layer.name.startswith(ENCODER_PREFIX)]


def encoder_parameters(autoencoder: keras.Model) -> int:
    """The number of weights of an autoencoder's recurrent encoder (all its layers)."""
    return sum(layer.count_params() for layer in encoder_layers(autoencoder))


def embedding_model(autoencoder: keras.Model) -> keras.Model:
    """The encoder half of a built autoencoder (shared weights): inputs -> ``(B, T, d)``."""
    return keras.Model(autoencoder.inputs, autoencoder.get_layer("embedding").output)
