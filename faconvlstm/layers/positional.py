"""Fixed positional encoding: seasonal harmonics of the year fraction plus the step index."""

from __future__ import annotations

import math

from keras import layers, ops, saving

from faconvlstm import validation
from faconvlstm.errors import InputError

#: Base of the transformer's geometric frequency ladder.
POSITION_BASE = 10000.0


def _sin_cos_pairs(angles):
    """``(..., n) -> (..., 2n)`` laid out as ``[sin(a_0), cos(a_0), sin(a_1), cos(a_1), ...]``."""
    pairs = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)
    return ops.reshape(pairs, (*ops.shape(angles)[:-1], 2 * ops.shape(angles)[-1]))


@saving.register_keras_serializable(package="faconvlstm")
class SeasonalPositionalEncoding(layers.Layer):
    """Seasonal harmonics of the calendar phase and the sinusoidal position within the window.

    ``(B, T)`` year fraction ``phi`` in [0, 1) -> ``(B, T, 2 * harmonics + position_dim)``:
    first ``sin(2 pi k phi), cos(2 pi k phi)`` for ``k = 1..harmonics``, then the transformer
    encoding of the step index ``t = 0..T-1``: ``sin(t w_i), cos(t w_i)`` with
    ``w_i = 10000 ** (-2 i / position_dim)``. No weights; ``T`` may be unknown until call time.
    """

    def __init__(self, harmonics: int = 3, position_dim: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.harmonics = validation.non_negative_int(harmonics, "harmonics")
        self.position_dim = validation.non_negative_int(position_dim, "position_dim")
        if self.position_dim % 2:
            raise InputError(
                "`position_dim` must be even (it holds sin/cos pairs); "
                f"received position_dim={position_dim}."
            )
        if self.harmonics == 0 and self.position_dim == 0:
            raise InputError(
                "`harmonics` and `position_dim` cannot both be 0: the encoding would be empty."
            )

    @property
    def output_dim(self) -> int:
        """Width of the encoding, ``2 * harmonics + position_dim``."""
        return 2 * self.harmonics + self.position_dim

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise InputError(
                f"{self.__class__.__name__} expects a (batch, time) year fraction; received "
                f"shape {tuple(input_shape)}."
            )

    def call(self, year_fraction):
        phase = ops.cast(year_fraction, self.compute_dtype)
        parts = []
        if self.harmonics:
            orders = ops.arange(1, self.harmonics + 1, dtype=self.compute_dtype)
            parts.append(_sin_cos_pairs(2.0 * math.pi * phase[..., None] * orders))
        if self.position_dim:
            batch, steps = ops.shape(phase)
            exponents = ops.arange(0, self.position_dim, 2, dtype=self.compute_dtype)
            frequencies = ops.power(POSITION_BASE, -exponents / self.position_dim)
            positions = ops.arange(steps, dtype=self.compute_dtype)
            encoding = _sin_cos_pairs(positions[:, None] * frequencies)
            parts.append(ops.broadcast_to(encoding[None], (batch, steps, self.position_dim)))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape), self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "harmonics": self.harmonics,
            "position_dim": self.position_dim,
        }
