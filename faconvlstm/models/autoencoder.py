"""The autoencoder that learns per-timestep embeddings of gridded multivariate fields.

``frames + validity -> recurrent encoder -> SubspaceHead -> TemporalSelfAttention -> z``, and
``z -> FrameDecoder -> reconstruction`` trained with the masked, area-weighted MSE. With
``cell="convlstm"`` the encoder is ``keras.layers.ConvLSTM2D`` and everything else identical,
the twin the evaluation compares against.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
from keras import layers, ops

from faconvlstm.layers import (
    FAConvLSTM2D,
    SeasonalPositionalEncoding,
    SubspaceHead,
    TemporalSelfAttention,
)
from faconvlstm.models.decoder import UPSAMPLING, FrameDecoder
from faconvlstm.models.losses import MaskedReconstructionLoss

#: The layer whose added loss is the masked reconstruction error.
RECONSTRUCTION_LAYER = "reconstruction"

#: The model's inputs: normalised frames with invalid cells set to 0, the per-cell loss
#: weight (cos latitude where valid, 0 where not), both ``(B, T, H, W, C)``, and the fraction
#: of the calendar year of each step ``(B, T)``.
INPUT_NAMES = ("frames", "weights", "year_fraction")
CELLS = ("fa", "convlstm")
#: Keras dtype policies of the recurrent encoder and the decoder (the costly parts). The
#: head, the temporal attention, the embedding and the loss always compute in float32.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
MIN_GRID = UPSAMPLING


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the model's architecture (saved with every run).

    ``layer_options`` go to each ``FAConvLSTM2D`` (e.g. ``{"attention_every": 0}`` for an
    ablation); they are ignored by the ConvLSTM2D twin. ``global_halo > 0`` marks a global
    grid: the encoder's input is padded by that many cells, circularly in longitude and by
    reflection in latitude, and its output cropped back, so the recurrent convolutions see
    across the dateline and over the poles instead of zeros. ``harmonics=0`` drops the seasonal
    part of the positional encoding; ``temporal_attention=False`` drops the whole block.
    ``precision`` is one of :data:`PRECISIONS`.
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
    harmonics: int = 3
    position_dim: int = 8
    attention_heads: int = 2
    decoder_filters: int = 16
    global_halo: int = 0
    precision: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "grid", tuple(int(size) for size in self.grid))
        object.__setattr__(self, "filters", tuple(int(size) for size in self.filters))
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}; got {self.cell!r}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {self.precision!r}.")
        if min(self.grid) < MIN_GRID:
            raise ValueError(
                f"The grid {self.grid[0]}x{self.grid[1]} is too small for the model; expected "
                f"at least {MIN_GRID}x{MIN_GRID} cells."
            )
        if not 0 <= self.global_halo < min(self.grid):
            raise ValueError(
                f"global_halo must be in [0, {min(self.grid)}) for a {self.grid} grid; got "
                f"{self.global_halo}."
            )
        for name in ("channels", "window", "kernel_size", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)}.")
        if not self.filters or min(self.filters) < 1:
            raise ValueError(f"filters must be one or more positive integers; got {self.filters}.")

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
            raise ValueError(f"Unknown model settings {unknown}; expected some of {sorted(known)}.")
        return cls(**values)


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
        "name": f"encoder_{index}",
        "dtype": config.precision,
    }
    if config.cell == "convlstm":
        return layers.ConvLSTM2D(filters, config.kernel_size, **common)
    return FAConvLSTM2D(filters, config.kernel_size, **common, **config.layer_options)


def build_autoencoder(config: ModelConfig) -> keras.Model:
    """The trainable model; its loss is added inside, so compile it without one.

    Values at cells of weight 0 are ignored (zeroed) and a validity channel is appended, so
    whatever fills invalid cells cannot leak into the embedding. Inputs: a dict with
    :data:`INPUT_NAMES`. Outputs: ``{"embedding": (B, T, d),
    "reconstruction": (B, T, H, W, C)}``.
    """
    frame_shape = (config.window, *config.grid, config.channels)
    frames = keras.Input(frame_shape, name="frames")
    weights = keras.Input(frame_shape, name="weights")
    year_fraction = keras.Input((config.window,), name="year_fraction")

    valid = ops.cast(weights > 0, frames.dtype)
    any_valid = ops.max(valid, axis=-1, keepdims=True)
    hidden = ops.concatenate([frames * valid, any_valid], axis=-1)
    halo = config.global_halo
    if halo:
        hidden = pad_globally(hidden, halo)
    for index, filters in enumerate(config.filters):
        hidden = _recurrent_layer(config, filters, index)(hidden)
    if halo:
        hidden = hidden[:, :, halo:-halo, halo:-halo, :]
    pooling_weights = ops.mean(weights, axis=-1)
    z = SubspaceHead(
        config.embedding_dim,
        projection_dim=max(config.filters[-1], math.ceil(config.embedding_dim / 2)),
        orthogonality=config.orthogonality,
        name="subspace_head",
    )([hidden, pooling_weights])
    if config.temporal_attention:
        encoding = SeasonalPositionalEncoding(
            config.harmonics, config.position_dim, name="positional_encoding"
        )(year_fraction)
        z = TemporalSelfAttention(config.attention_heads, name="temporal_attention")([z, encoding])
    embedding = layers.Identity(name="embedding", dtype="float32")(z)
    reconstruction = FrameDecoder(
        config.grid, config.channels, config.decoder_filters, name="decoder",
        dtype=config.precision,
    )(embedding)
    reconstruction = MaskedReconstructionLoss(name=RECONSTRUCTION_LAYER, dtype="float32")(
        [reconstruction, frames, weights]
    )
    name = f"{config.cell}_autoencoder"
    return keras.Model(
        {"frames": frames, "weights": weights, "year_fraction": year_fraction},
        {"embedding": embedding, "reconstruction": reconstruction},
        name=name,
    )


#: Measured peak training memory over the count of :func:`training_memory_bytes`' terms, by
#: (backend, cell), rounded up (CPU; 16x24 to 96x128 grids, batch 4-8, 8-16 steps): PyTorch
#: 1.5-1.7 (FA) and 1.9-2.2 (ConvLSTM2D); JAX 3.9-5.0 (FA: XLA keeps every elementwise
#: intermediate of the scan for the backward pass) and 1.4-1.9 (ConvLSTM2D).
MEMORY_OVERHEAD = {
    ("torch", "fa"): 1.8, ("torch", "convlstm"): 2.3, ("jax", "fa"): 5.0, ("jax", "convlstm"): 2.0,
}
#: Memory a training step takes whatever the size (allocator pools, compiled programs); the
#: PyTorch figure is the measured ~25 MiB with a margin.
FIXED_MEMORY = {"torch": 64 * 2**20, "jax": 512 * 2**20}


def training_memory_bytes(config: ModelConfig, batch_size: int) -> int:
    """Estimated peak memory of one training step on ``batch_size`` windows, on this backend.

    Counts the values each cell and step keeps for the backward pass (inputs, each recurrent
    layer's bottleneck and gate tensors, the decoder and the loss), scaled by the measured
    :data:`MEMORY_OVERHEAD`, plus :data:`FIXED_MEMORY`; weights and optimizer state are
    negligible beside them. Other backends get the largest factors.
    """
    fa = {"bottleneck": 8, "multiscale_dilations": (1, 2, 4), **config.layer_options}
    per_cell = 3 * config.channels + 1
    for filters in config.filters:
        if config.cell == "convlstm":
            per_cell += 15 * filters
        else:
            per_cell += (4 + len(fa["multiscale_dilations"])) * fa["bottleneck"] + 11 * filters
    per_cell += 2 * config.decoder_filters + 4 * config.channels
    bytes_per_value = 4 if config.precision == "float32" else 2
    cells = batch_size * config.window * config.grid[0] * config.grid[1]
    backend = keras.backend.backend()
    overhead = MEMORY_OVERHEAD.get((backend, config.cell), max(MEMORY_OVERHEAD.values()))
    fixed = FIXED_MEMORY.get(backend, max(FIXED_MEMORY.values()))
    return int(overhead * per_cell * cells * bytes_per_value) + fixed


def embedding_model(autoencoder: keras.Model) -> keras.Model:
    """The encoder half of a built autoencoder (shared weights): inputs -> ``(B, T, d)``."""
    return keras.Model(autoencoder.inputs, autoencoder.get_layer("embedding").output)
