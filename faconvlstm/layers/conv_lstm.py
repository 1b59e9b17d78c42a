"""FAConvLSTM2D: a drop-in replacement for ``keras.layers.ConvLSTM2D``."""

from __future__ import annotations

from keras import (
    activations,
    backend,
    constraints,
    initializers,
    ops,
    regularizers,
    saving,
    tree,
)
from keras.layers import RNN, Layer

from faconvlstm import validation
from faconvlstm.errors import InputError
from faconvlstm.layers.attention import attention_steps
from faconvlstm.layers.cell import FAConvLSTM2DCell

INPUT_RANK = 5

#: Hyper-parameters the layer exposes as read-only attributes, as ConvLSTM2D does.
CELL_ATTRIBUTES = (
    "filters", "kernel_size", "strides", "padding", "dilation_rate", "activation",
    "recurrent_activation", "use_bias", "kernel_initializer", "recurrent_initializer",
    "bias_initializer", "unit_forget_bias", "kernel_regularizer", "recurrent_regularizer",
    "bias_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint",
    "dropout", "recurrent_dropout", "seed", "bottleneck", "multiscale_dilations",
    "squeeze_excitation", "squeeze_ratio", "peephole", "attention_every", "attention_dim",
    "attention_heads", "attention_tokens", "attention_chunk",
)


@saving.register_keras_serializable(package="faconvlstm")
class FAConvLSTM2D(RNN):
    """Factorized-Attention ConvLSTM, a drop-in for ``keras.layers.ConvLSTM2D``.

    Same constructor arguments, input/output shapes and states as ConvLSTM2D; the gates are
    factorized through a ``bottleneck`` of ``r`` channels (1x1 projections, a shared
    multi-scale depthwise mixing, squeeze-and-excitation, a 1x1 expansion to the four gates),
    with peepholes and axial spatial attention every ``attention_every`` steps and on the
    last one. See ``docs/layer.md`` for the equations and the cost.

    Input ``(B, T, H, W, C)`` (channels_last) or ``(B, T, C, H, W)`` (channels_first).
    Output ``(B, [T,] H', W', F)`` (or channels_first), with ``H', W'`` the grid after
    ``strides``/``padding``/``dilation_rate``; with ``return_state`` also ``h`` and ``c``.

    Differences from ConvLSTM2D, all documented in ``docs/layer.md``:
    ``kernel_*`` apply to the input path and the expansion, ``recurrent_*`` to the recurrent
    projection and the spatial mixing; ``dropout`` is one time-constant mask on the
    projected input and ``recurrent_dropout`` one on ``h`` (not four per-gate masks); the
    spatial size may be unknown until call time (except with ``stateful=True``); the
    stateful state variables (``layer.states``) are kept channels_last.

    Args beyond ConvLSTM2D's:
        bottleneck: width ``r`` of the factorized gates; default ``max(8, filters // 4)``.
        multiscale_dilations: dilations of the depthwise mixing branches; ``(1,)`` is a
            single-scale mixing.
        squeeze_excitation: whether to recalibrate the bottleneck channels.
        squeeze_ratio: squeeze width is ``max(1, bottleneck // squeeze_ratio)``.
        peephole: whether the gates see the cell state.
        attention_every: axial attention runs on processing steps ``t`` with
            ``(t + 1) % attention_every == 0`` and on the last step; 0 switches it off.
        attention_dim: width ``d_a`` of queries, keys and values; default
            ``max(4, bottleneck // 2)`` rounded up to a multiple of ``attention_heads``.
        attention_heads: number of heads; must divide ``attention_dim``.
        attention_tokens: keys per row (column) a query attends to at most: along a longer
            axis keys and values are averaged over windows of ``ceil(L / attention_tokens)``
            cells, so the attention's cost per cell does not grow with the grid; 0 attends
            to every cell (cost per cell ``H + W``).
        attention_chunk: rows (columns) attended at once; default: as many as keep one
            chunk under 2**25 scores.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        bottleneck=None,
        multiscale_dilations=(1, 2, 4),
        squeeze_excitation=True,
        squeeze_ratio=4,
        peephole=True,
        attention_every=4,
        attention_dim=None,
        attention_heads=2,
        attention_tokens=32,
        attention_chunk=None,
        **kwargs,
    ):
        filters = validation.positive_int(filters, "filters")
        strides = validation.positive_pair(strides, "strides")
        dilation_rate = validation.positive_pair(dilation_rate, "dilation_rate")
        validation.check_strides_and_dilation(strides, dilation_rate)
        bottleneck = validation.positive_int(bottleneck, "bottleneck", allow_none=True)
        bottleneck = bottleneck or max(8, filters // 4)
        attention_heads = validation.positive_int(attention_heads, "attention_heads")
        attention_dim = validation.positive_int(attention_dim, "attention_dim", allow_none=True)
        if attention_dim is None:
            attention_dim = -(-max(4, bottleneck // 2) // attention_heads) * attention_heads
        validation.check_heads(attention_dim, attention_heads)
        data_format = validation.data_format_name(data_format, backend.image_data_format())
        cell = FAConvLSTM2DCell(
            filters=filters,
            kernel_size=validation.positive_pair(kernel_size, "kernel_size"),
            strides=strides,
            padding=validation.padding_mode(padding),
            dilation_rate=dilation_rate,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=validation.rate(dropout, "dropout"),
            recurrent_dropout=validation.rate(recurrent_dropout, "recurrent_dropout"),
            seed=seed,
            bottleneck=bottleneck,
            multiscale_dilations=validation.dilation_tuple(
                multiscale_dilations, "multiscale_dilations"
            ),
            squeeze_excitation=bool(squeeze_excitation),
            squeeze_ratio=validation.positive_int(squeeze_ratio, "squeeze_ratio"),
            peephole=bool(peephole),
            attention_every=validation.non_negative_int(attention_every, "attention_every"),
            attention_dim=attention_dim,
            attention_heads=attention_heads,
            attention_tokens=validation.non_negative_int(attention_tokens, "attention_tokens"),
            attention_chunk=validation.positive_int(
                attention_chunk, "attention_chunk", allow_none=True
            ),
            name="fa_conv_lstm_cell",
            dtype=kwargs.get("dtype"),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.data_format = data_format

    # ----------------------------------------------------------------------------- layout
    @property
    def _channels_first(self) -> bool:
        return self.data_format == "channels_first"

    def _to_channels_last(self, tensor, time_axis: bool):
        """Move the channel axis of a user-layout tensor last (no-op for channels_last)."""
        if not self._channels_first:
            return tensor
        return ops.transpose(tensor, (0, 1, 3, 4, 2) if time_axis else (0, 2, 3, 1))

    def _to_user_layout(self, tensor, time_axis: bool):
        """Inverse of :meth:`_to_channels_last`."""
        if not self._channels_first:
            return tensor
        return ops.transpose(tensor, (0, 1, 4, 2, 3) if time_axis else (0, 3, 1, 2))

    def _channels_last_shape(self, shape) -> tuple:
        """A user-layout input shape ``(B, T, ...)`` as ``(B, T, H, W, C)``."""
        shape = tuple(shape)
        if self._channels_first:
            return (shape[0], shape[1], shape[3], shape[4], shape[2])
        return shape

    def _output_grid(self, height, width) -> tuple:
        """``(H', W')`` after the input path (Keras' conv rule); None where a size is unknown."""
        cell = self.cell
        return tuple(
            None if size is None else (
                -(-size // stride) if cell.padding == "same"
                else (size - (kernel - 1) * dilation - 1) // stride + 1
            )
            for size, kernel, stride, dilation in zip(
                (height, width), cell.kernel_size, cell.strides, cell.dilation_rate
            )
        )

    # ----------------------------------------------------------------------------- build
    def _check_input_shape(self, shape) -> None:
        if len(shape) != INPUT_RANK:
            layout = "(batch, time, channels, rows, cols)" if self._channels_first else (
                "(batch, time, rows, cols, channels)"
            )
            raise InputError(
                f"{self.__class__.__name__} expects a 5D input {layout} "
                f"({self.data_format}); received an input of rank {len(shape)} with "
                f"shape {tuple(shape)}."
            )
        _, _, height, width, channels = self._channels_last_shape(shape)
        if channels is None:
            raise InputError(
                f"The channel axis of the input to {self.__class__.__name__} must be known; "
                f"received shape {tuple(shape)} ({self.data_format})."
            )
        built_channels = getattr(self.cell, "input_channels", None)
        if built_channels is not None and channels != built_channels:
            raise InputError(
                f"{self.__class__.__name__} was built for inputs with {built_channels} "
                f"channels; received {channels} channels (shape {tuple(shape)}, "
                f"{self.data_format})."
            )
        grid = self._output_grid(height, width)
        if any(size is not None and size < 1 for size in grid):
            raise InputError(
                f"The input grid {height}x{width} is too small for kernel_size="
                f"{self.cell.kernel_size}, dilation_rate={self.cell.dilation_rate} and "
                f"padding='{self.cell.padding}': the output grid would be {grid}."
            )

    def build(self, sequences_shape, initial_state_shape=None):
        """Create the cell's weights (and, when stateful, the state variables)."""
        self._check_input_shape(sequences_shape)
        batch, _, height, width, channels = self._channels_last_shape(sequences_shape)
        grid = self._output_grid(height, width)
        if not self.cell.built:
            self.cell.build((batch, height, width, channels), state_grid=grid)
        if self.stateful and self.states is None:
            self.states = self._state_variables(batch, grid)
        super().build(sequences_shape, initial_state_shape)

    def _state_variables(self, batch, grid) -> list:
        """Stateful ``[h, c]`` as non-trainable weights ``(B, H', W', F)``: tracked, so they
        are saved with the model and carried between batches on every backend."""
        if batch is None or None in grid:
            raise InputError(
                "`stateful=True` needs a static batch size and grid; declare them with "
                "keras.Input(batch_shape=(batch, time, rows, cols, channels)). Received "
                f"batch={batch} and an output grid of {grid}."
            )
        return [
            self.add_weight(
                shape=(batch, *grid, self.cell.filters), initializer="zeros",
                trainable=False, name="rnn_state",
            )
            for _ in range(2)
        ]

    # ----------------------------------------------------------------------------- call
    def _check_mask(self, mask) -> None:
        if mask is None:
            return
        if len(mask.shape) != 2:
            raise InputError(
                f"{self.__class__.__name__} takes a (batch, time) timestep mask; received a "
                f"mask of shape {tuple(mask.shape)}. Missing grid cells are not a Keras mask: "
                "fill them and pass a validity channel instead."
            )

    def _check_stateful_batch(self, sequences) -> None:
        expected, received = self.states[0].shape[0], sequences.shape[0]
        if received is not None and received != expected:
            raise InputError(
                f"This stateful {self.__class__.__name__} was built for batches of {expected}; "
                f"received a batch of {received} (shape {tuple(sequences.shape)})."
            )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        self._check_input_shape(sequences.shape)
        self._check_mask(mask)
        projected = self.cell.project_inputs(self._to_channels_last(sequences, time_axis=True))
        batch, steps, height, width, _ = ops.shape(projected)
        if initial_state is not None:
            initial_state = [
                self._to_channels_last(state, time_axis=False)
                for state in tree.flatten(initial_state)
            ]
        elif self.stateful:
            self._check_stateful_batch(sequences)
        else:
            initial_state = self.cell.get_initial_state(batch, (height, width))
        if mask is not None:
            # (B, T) -> (B, T, 1, 1, 1): each step's mask broadcasts over the grid and filters.
            mask = ops.reshape(ops.cast(mask, "bool"), (batch, steps, 1, 1, 1))
        step_inputs = self.cell.with_schedule(projected, self.go_backwards)
        self.cell.prepare_dropout_masks(
            projected[:, 0], (initial_state or self.states)[0], training
        )
        try:
            result = super().call(
                step_inputs, initial_state=initial_state, mask=mask, training=training
            )
        finally:
            self.cell.clear_dropout_masks()
        if not self.return_state:
            return self._to_user_layout(result, time_axis=self.return_sequences)
        output, *states = result
        return (
            self._to_user_layout(output, time_axis=self.return_sequences),
            *(self._to_user_layout(state, time_axis=False) for state in states),
        )

    # ----------------------------------------------------------------------------- inspection
    def inspect(self, sequences) -> dict:
        """What squeeze-excitation and axial attention did on ``sequences``, step by step.

        Runs the recurrence eagerly in inference mode from zero states (no mask and no
        stored state) on an input of the layer's layout and returns

        - ``"outputs"``: ``h_t`` at every step, ``(B, T, H', W', F)`` channels_last;
        - ``"channel_weights"``: the SE scale of each bottleneck channel, ``(B, T, r)``
          (None with ``squeeze_excitation=False``);
        - ``"attention"``: the attention each cell of the ``H' x W'`` grid received at the
          attended steps (maps sum to 1), ``(B, A, H', W')`` (None without attention);
        - ``"attention_steps"``: the ``A`` input time indices of those maps.

        Indices are input time, also with ``go_backwards``.
        """
        if not self.built:
            self.build(tuple(sequences.shape))
        self._check_input_shape(sequences.shape)
        projected = self.cell.project_inputs(
            self._to_channels_last(ops.convert_to_tensor(sequences), time_axis=True)
        )
        batch, steps, height, width, _ = ops.shape(projected)
        states = self.cell.get_initial_state(batch, (height, width))
        order = list(range(steps))[::-1] if self.go_backwards else list(range(steps))
        outputs, channel_weights, attention = {}, {}, {}
        schedule = ops.convert_to_numpy(attention_steps(steps, self.cell.attention_every))
        for t, attend in zip(order, schedule):
            h, c, channel_weights[t], received = self.cell.inspect_step(
                projected[:, t], states, attend
            )
            states, outputs[t] = [h, c], h
            if received is not None:
                attention[t] = received
        attended = sorted(attention)
        return {
            "outputs": ops.stack([outputs[t] for t in range(steps)], axis=1),
            "channel_weights": None if self.cell.excitation is None else ops.stack(
                [channel_weights[t] for t in range(steps)], axis=1
            ),
            "attention": ops.stack([attention[t] for t in attended], axis=1) if attended else None,
            "attention_steps": attended,
        }

    # ----------------------------------------------------------------------------- shapes
    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps, height, width, _ = self._channels_last_shape(sequences_shape)
        grid = self._output_grid(height, width)
        if self._channels_first:
            state_shape = (batch, self.cell.filters, *grid)
        else:
            state_shape = (batch, *grid, self.cell.filters)
        output_shape = (
            (state_shape[0], steps, *state_shape[1:]) if self.return_sequences else state_shape
        )
        if self.return_state:
            return output_shape, state_shape, state_shape
        return output_shape

    def compute_mask(self, _, mask):
        mask = tree.flatten(mask)[0] if mask is not None else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask, None, None]
        return output_mask

    # ----------------------------------------------------------------------------- config
    def get_config(self):
        serializers = {
            "activation": activations.serialize,
            "recurrent_activation": activations.serialize,
            "kernel_initializer": initializers.serialize,
            "recurrent_initializer": initializers.serialize,
            "bias_initializer": initializers.serialize,
            "kernel_regularizer": regularizers.serialize,
            "recurrent_regularizer": regularizers.serialize,
            "bias_regularizer": regularizers.serialize,
            "kernel_constraint": constraints.serialize,
            "recurrent_constraint": constraints.serialize,
            "bias_constraint": constraints.serialize,
        }
        config = {
            name: serializers.get(name, lambda value: value)(getattr(self.cell, name))
            for name in CELL_ATTRIBUTES
        }
        config["data_format"] = self.data_format
        config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        # The cell is rebuilt from these arguments: skip RNN.get_config's cell serialization.
        base_config = Layer.get_config(self)
        rnn_config = {
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
        return {**base_config, **rnn_config, **config}

    @classmethod
    def from_config(cls, config):
        if "attention_every" in config and "attention_tokens" not in config:
            config = {**config, "attention_tokens": 0}  # saved before keys were pooled
        return cls(**config)


def _cell_attribute(name: str) -> property:
    return property(lambda layer: getattr(layer.cell, name), doc=f"The cell's `{name}`.")


for _name in CELL_ATTRIBUTES:
    setattr(FAConvLSTM2D, _name, _cell_attribute(_name))
