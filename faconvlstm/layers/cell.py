"""The FAConvLSTM2D cell: one recurrent step on bottleneck-projected inputs."""

from __future__ import annotations

import keras
from keras import activations, backend, constraints, initializers, ops, random, regularizers
from keras.layers import Layer
from keras.random import SeedGenerator

from faconvlstm.errors import InputError
from faconvlstm.layers.attention import AxialAttention2D, attention_steps
from faconvlstm.layers.excitation import SqueezeExcitation
from faconvlstm.layers.gates import InputProjection, PeepholeGates, project_channels
from faconvlstm.layers.spatial_mixing import MultiScaleDepthwiseMixing


class FAConvLSTM2DCell(Layer):
    """One step of the Factorized-Attention ConvLSTM, in channels_last layout.

    The cell owns every weight of the layer; it is driven by :class:`FAConvLSTM2D` and is
    not a standalone ``keras.layers.RNN`` cell. :meth:`project_inputs` runs the input path on
    all timesteps at once and appends the attention schedule; :meth:`call` then runs one
    step::

        u = x'_t + P_h h_{t-1}                         (B, H', W', r)
        u = SE(sum_j DepthwiseConv_{d_j}(u))           shared multi-scale mixing
        i, f, c, o from E u + b with peepholes -> h_t, c_t
        h_t = h_t + gamma * AxialAttention(h_t)        on the steps the schedule marks

    A step input is ``(B, H', W', r + 1)``: ``x'_t`` and, in the last channel, 1 where
    attention runs at this step and 0 elsewhere (a step input, not a state, so the schedule
    follows processing order under masks and leaves the states those of ConvLSTM2D). States
    are ``[h, c]``, each ``(B, H', W', F)``. Arguments are those of :class:`FAConvLSTM2D`
    (already validated).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: tuple[int, int],
        strides: tuple[int, int] = (1, 1),
        padding: str = "valid",
        dilation_rate: tuple[int, int] = (1, 1),
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        bottleneck: int = 8,
        multiscale_dilations: tuple[int, ...] = (1, 2, 4),
        squeeze_excitation: bool = True,
        squeeze_ratio: int = 4,
        peephole: bool = True,
        attention_every: int = 4,
        attention_dim: int = 4,
        attention_heads: int = 1,
        attention_tokens: int = 0,
        attention_chunk: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.dilation_rate = dilation_rate
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = unit_forget_bias
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.seed = seed
        self.seed_generator = SeedGenerator(seed=seed)
        self.bottleneck = bottleneck
        self.multiscale_dilations = multiscale_dilations
        self.squeeze_excitation = squeeze_excitation
        self.squeeze_ratio = squeeze_ratio
        self.peephole = peephole
        self.attention_every = attention_every
        self.attention_dim = attention_dim
        self.attention_heads = attention_heads
        self.attention_tokens = attention_tokens
        self.attention_chunk = attention_chunk
        self.state_size = -1  # the grid is known only at call time
        self._dropout_masks = (None, None)

    def build(self, input_shape, state_grid=(None, None)):
        """Create every weight.

        ``input_shape`` is a channels_last frame ``(B, H, W, C)``; ``state_grid`` is
        ``(H', W')`` after the input path, None where unknown until call time.
        """
        self.input_channels = input_shape[-1]
        self.state_grid = tuple(state_grid)
        sublayer_options = {"dtype": self.dtype_policy}
        self.input_path = InputProjection(
            self.bottleneck,
            self.kernel_size,
            self.strides,
            self.padding,
            self.dilation_rate,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            kernel_constraint=self.kernel_constraint,
            name="input_path",
            **sublayer_options,
        )
        self.input_path.build((None, None, *input_shape[1:]))
        self.recurrent_projection = self.add_weight(
            shape=(self.filters, self.bottleneck),
            name="recurrent_projection",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        bottleneck_shape = (None, None, None, self.bottleneck)
        self.mixing = MultiScaleDepthwiseMixing(
            self.kernel_size,
            self.multiscale_dilations,
            kernel_initializer=self.recurrent_initializer,
            kernel_regularizer=self.recurrent_regularizer,
            kernel_constraint=self.recurrent_constraint,
            name="mixing",
            **sublayer_options,
        )
        self.mixing.build(bottleneck_shape)
        self.excitation = None
        if self.squeeze_excitation:
            self.excitation = SqueezeExcitation(
                self.squeeze_ratio, name="excitation", **sublayer_options
            )
            self.excitation.build(bottleneck_shape)
        self.gates = PeepholeGates(
            self.filters,
            self.activation,
            self.recurrent_activation,
            use_bias=self.use_bias,
            unit_forget_bias=self.unit_forget_bias,
            peephole=self.peephole,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            name="gates",
            **sublayer_options,
        )
        self.gates.build(bottleneck_shape)
        self.attention = None
        if self.attention_every:
            self.attention = AxialAttention2D(
                self.attention_dim,
                self.attention_heads,
                chunk_size=self.attention_chunk,
                tokens=self.attention_tokens,
                name="attention",
                **sublayer_options,
            )
            self.attention.build((None, None, None, self.filters))

    def project_inputs(self, sequences):
        """The input path for all timesteps: ``(B, T, H, W, C) -> (B, T, H', W', r)``."""
        return self.input_path(sequences)

    def with_schedule(self, projected, go_backwards: bool = False):
        """``(B, T, H', W', r)`` -> the ``(B, T, H', W', r + 1)`` step inputs of :meth:`call`,
        each step flagged by :func:`attention_steps` in processing order."""
        flags = attention_steps(ops.shape(projected)[1], self.attention_every)
        flags = ops.cast(ops.flip(flags, 0) if go_backwards else flags, projected.dtype)
        flags = ops.broadcast_to(
            ops.reshape(flags, (1, -1, 1, 1, 1)), (*ops.shape(projected)[:-1], 1)
        )
        return ops.concatenate([projected, flags], axis=-1)

    def prepare_dropout_masks(self, projected_step, h, training: bool) -> None:
        """Draw the time-constant dropout masks on ``x'_t (B, H', W', r)`` and ``h`` for the
        coming sequence, before the loop (no random draw inside a compiled scan); none
        outside training."""
        self._dropout_masks = tuple(
            random.dropout(ops.ones_like(tensor), rate, seed=self.seed_generator)
            if training and rate > 0 else None
            for tensor, rate in ((projected_step, self.dropout), (h, self.recurrent_dropout))
        )

    def clear_dropout_masks(self) -> None:
        """Forget the masks of :meth:`prepare_dropout_masks` once the sequence is done."""
        self._dropout_masks = (None, None)

    def call(self, inputs, states):
        """One step: ``(inputs (B, H', W', r + 1), [h, c]) -> (h_t, [h_t, c_t])``.

        On JAX the step is rematerialized: the backward pass recomputes its intermediates
        from ``inputs`` and ``[h, c]`` instead of keeping them for every step of the scan.
        """
        step = keras.remat(self._step) if backend.backend() == "jax" else self._step
        h, c = step(inputs, *states)
        return h, [h, c]

    def _step(self, inputs, h_prev, c_prev):
        """:meth:`call`'s computation: ``(h_t, c_t)``.

        The sublayers, built in :meth:`build`, are run through their ``call``: the step runs
        inside the layer's own call (its dtype policy and autocasting already in force),
        and ``Layer.__call__``'s bookkeeping would cost 0.1-0.3 ms per sublayer per step.
        """
        projected, attend = inputs[..., : self.bottleneck], inputs[0, 0, 0, self.bottleneck]
        input_mask, recurrent_mask = self._dropout_masks
        if input_mask is not None:
            projected = projected * input_mask
        if recurrent_mask is not None:
            h_prev = h_prev * recurrent_mask
        u = self._mixed(projected, h_prev)
        if self.excitation is not None:
            u = self.excitation.call(u)
        h, c = self.gates.call(u, c_prev)
        if self.attention is not None:
            h = ops.cond(attend > 0, lambda: self.attention.call(h), lambda: h)
        return h, c

    def _mixed(self, projected, h_prev):
        """``Mixing(x'_t + P_h h_{t-1})``: the bottleneck tensor ``(B, H', W', r)``."""
        return self.mixing.call(projected + project_channels(h_prev, self.recurrent_projection))

    def inspect_step(self, projected, states, attend: bool):
        """:meth:`call` in inference mode, also returning what SE and attention did.

        Returns ``(h_t, c_t, channel_weights (B, r) or None, received_attention (B, H', W')
        or None)``: the squeeze-excitation scale and, on an attended step, the attention
        each cell received (:meth:`AxialAttention2D.received_attention`).
        """
        h_prev, c_prev = states
        u = self._mixed(projected, h_prev)
        channel_weights = received = None
        if self.excitation is not None:
            channel_weights = self.excitation.channel_weights(u)
            u = u * channel_weights[:, None, None, :]
        h, c = self.gates(u, c_prev)
        if self.attention is not None and attend:
            received = self.attention.received_attention(h)
            h = self.attention(h)
        return h, c, channel_weights, received

    def get_initial_state(self, batch_size=None, grid=None):
        """Zero ``[h, c]`` of shape ``(batch_size, *grid, F)``.

        ``grid`` is ``(H', W')``; by default the one known at build time.
        """
        grid = self.state_grid if grid is None else tuple(grid)
        if None in grid:
            raise InputError(
                "The grid of this layer's states is only known at call time (the layer was "
                f"built for a grid of {grid}); pass `grid=(rows, cols)`."
            )
        shape = (batch_size, *grid, self.filters)
        return [ops.zeros(shape, dtype=self.compute_dtype) for _ in range(2)]
