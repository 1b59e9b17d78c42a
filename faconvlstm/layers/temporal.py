"""Temporal self-attention over a sequence of per-step embeddings, with a fixed encoding added."""

from __future__ import annotations

from keras import layers, ops, saving

from faconvlstm import validation
from faconvlstm.errors import InputError


@saving.register_keras_serializable(package="faconvlstm")
class TemporalSelfAttention(layers.Layer):
    """One pre-norm transformer block over time, told each step's position by an encoding.

    ``[z, encoding]`` with ``z`` ``(B, T, d)`` and ``encoding`` ``(B, T, E)`` -> ``(B, T, d)``:
    ``x = LayerNorm(z) + encoding W_e`` (no bias), ``y = z + MHA(x, x)``,
    ``out = y + FFN(LayerNorm(y))`` with ``FFN = Dense(d * ffn_multiplier, gelu) -> Dense(d)``.
    The encoding enters only what the attention compares and mixes, never the residual
    stream, so ``z`` passes through unchanged at its own scale and what the encoder measured
    is not drowned by the calendar.

    Args:
        heads: attention heads.
        key_dim: width of each head's queries and keys; default ``max(4, d // heads)``.
        ffn_multiplier: hidden width of the FFN as a multiple of ``d``.
        dropout: rate on the attention probabilities and on both residual branches (training).
        causal: whether step ``t`` attends only to steps ``<= t``.
        gated_residuals: scale each residual branch by a learned scalar that starts at 0,
            so the block starts as the identity and mixes in time only as far as training
            finds it useful.
    """

    def __init__(
        self,
        heads: int = 2,
        key_dim: int | None = None,
        ffn_multiplier: int = 2,
        dropout: float = 0.0,
        causal: bool = False,
        gated_residuals: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.heads = validation.positive_int(heads, "heads")
        self.key_dim = validation.positive_int(key_dim, "key_dim", allow_none=True)
        self.ffn_multiplier = validation.positive_int(ffn_multiplier, "ffn_multiplier")
        self.dropout = validation.rate(dropout, "dropout")
        self.causal = bool(causal)
        self.gated_residuals = bool(gated_residuals)

    def build(self, input_shape):
        sequence_shape, encoding_shape = self._check_shapes(input_shape)
        width = sequence_shape[-1]
        self.encoding_kernel = self.add_weight(
            shape=(encoding_shape[-1], width), name="encoding_kernel"
        )
        # Every sublayer is created and built here: one built lazily inside a traced function
        # (a JAX scan, a jit) would leave its variables uninitialized.
        self.attention = layers.MultiHeadAttention(
            num_heads=self.heads,
            key_dim=self.key_dim or max(4, width // self.heads),
            dropout=self.dropout,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.attention.build(sequence_shape, sequence_shape)
        self.attention_norm = layers.LayerNormalization(
            dtype=self.dtype_policy, name="attention_norm"
        )
        self.attention_norm.build(sequence_shape)
        self.ffn_hidden = layers.Dense(
            width * self.ffn_multiplier, activation="gelu", dtype=self.dtype_policy,
            name="ffn_hidden",
        )
        self.ffn_hidden.build(sequence_shape)
        self.ffn_output = layers.Dense(width, dtype=self.dtype_policy, name="ffn_output")
        self.ffn_output.build((*sequence_shape[:-1], width * self.ffn_multiplier))
        self.ffn_norm = layers.LayerNormalization(dtype=self.dtype_policy, name="ffn_norm")
        self.ffn_norm.build(sequence_shape)
        self.residual_dropout = layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.residual_gates = None
        if self.gated_residuals:
            self.residual_gates = self.add_weight(
                shape=(2,), name="residual_gates", initializer="zeros"
            )

    def _check_shapes(self, input_shape):
        if len(input_shape) != 2 or len(input_shape[0]) != 3 or len(input_shape[1]) != 3:
            raise InputError(
                f"{self.__class__.__name__} expects [z, encoding] with z (batch, time, width) "
                f"and encoding (batch, time, encoding_dim); received shapes {input_shape}."
            )
        sequence_shape, encoding_shape = (tuple(shape) for shape in input_shape)
        if sequence_shape[-1] is None or encoding_shape[-1] is None:
            raise InputError(
                "The last axes of z and encoding must be known; received shapes "
                f"{sequence_shape} and {encoding_shape}."
            )
        return sequence_shape, encoding_shape

    def call(self, inputs, training=None):
        sequence, encoding = inputs
        position = ops.matmul(ops.cast(encoding, self.compute_dtype), self.encoding_kernel)
        x = self.attention_norm(sequence) + position
        attended = self.attention(x, x, use_causal_mask=self.causal, training=training)
        y = sequence + self._gated(0, self.residual_dropout(attended, training=training))
        transformed = self.ffn_output(self.ffn_hidden(self.ffn_norm(y)))
        return y + self._gated(1, self.residual_dropout(transformed, training=training))

    def _gated(self, index: int, branch):
        """``branch`` times its learned gate (with ``gated_residuals``; else unchanged)."""
        if self.residual_gates is None:
            return branch
        return branch * ops.cast(self.residual_gates[index], branch.dtype)

    def compute_output_shape(self, input_shape):
        sequence_shape, _ = self._check_shapes(input_shape)
        return sequence_shape

    def get_config(self):
        return {
            **super().get_config(),
            "heads": self.heads,
            "key_dim": self.key_dim,
            "ffn_multiplier": self.ffn_multiplier,
            "dropout": self.dropout,
            "causal": self.causal,
            "gated_residuals": self.gated_residuals,
        }
