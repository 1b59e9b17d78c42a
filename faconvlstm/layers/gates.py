"""Factorized gates: the 1x1-bottleneck input path and the expansion to peephole LSTM gates.

All tensors are channels_last. ``r`` is the bottleneck width, ``F`` the number of filters.
"""

from __future__ import annotations

from keras import activations, backend, constraints, initializers, layers, ops, regularizers


def project_channels(x, kernel):
    """``x (..., C) @ kernel (C, R)``; on PyTorch in float32 through
    :func:`~faconvlstm.layers.torch_kernels.channel_projection` (same product, its kernel
    gradient taken in the faster order)."""
    if backend.backend() == "torch" and backend.standardize_dtype(x.dtype) == "float32":
        from faconvlstm.layers.torch_kernels import channel_projection

        return channel_projection(x, ops.convert_to_tensor(kernel, "float32"))
    return ops.matmul(x, kernel)


class InputProjection(layers.Layer):
    """P_x then a strided depthwise convolution, applied to every timestep at once.

    ``(B, T, H, W, C) -> (B, T, H', W', r)``: a 1x1 convolution ``C -> r`` (a matmul over
    channels) followed by a depthwise ``kernel_size`` convolution carrying the layer's
    ``strides``, ``padding`` and ``dilation_rate``, so the recurrence runs on ``H' x W'``.
    """

    def __init__(
        self,
        bottleneck: int,
        kernel_size: tuple[int, int],
        strides: tuple[int, int],
        padding: str,
        dilation_rate: tuple[int, int],
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        kernel_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.bottleneck = bottleneck
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.dilation_rate = dilation_rate
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)

    def build(self, input_shape):
        weight_options = {
            "initializer": self.kernel_initializer,
            "regularizer": self.kernel_regularizer,
            "constraint": self.kernel_constraint,
        }
        self.projection = self.add_weight(
            shape=(input_shape[-1], self.bottleneck), name="projection", **weight_options
        )
        self.depthwise_kernel = self.add_weight(
            shape=(*self.kernel_size, self.bottleneck, 1), name="depthwise_kernel", **weight_options
        )

    def call(self, sequences):
        batch, steps, height, width, _ = ops.shape(sequences)
        frames = ops.reshape(sequences, (-1, height, width, ops.shape(sequences)[-1]))
        frames = project_channels(frames, self.projection)
        if self.strides[0] == self.strides[1]:
            frames = self._depthwise(frames, self.strides, self.padding)
        else:
            frames = self._unequally_strided_depthwise(frames)
        out_height, out_width = ops.shape(frames)[1:3]
        return ops.reshape(frames, (batch, steps, out_height, out_width, self.bottleneck))

    def _depthwise(self, frames, strides, padding: str):
        return ops.depthwise_conv(
            frames, self.depthwise_kernel, strides=strides, padding=padding,
            data_format="channels_last", dilation_rate=self.dilation_rate,
        )

    def _unequally_strided_depthwise(self, frames):
        """The strided convolution as a stride-1 one subsampled, with Keras' "same" padding
        made explicit: TensorFlow's CPU depthwise kernel takes only equal strides."""
        if self.padding == "same":
            frames = ops.pad(frames, ((0, 0), *self._same_padding(frames), (0, 0)))
        frames = self._depthwise(frames, 1, "valid")
        return frames[:, :: self.strides[0], :: self.strides[1]]

    def _same_padding(self, frames) -> list[tuple[int, int]]:
        """Keras' "same" rule per spatial axis: ``ceil(n / s)`` outputs, the extra cell of an
        odd total padding after the input."""
        pads = []
        for size, kernel, stride in zip(ops.shape(frames)[1:3], self.kernel_size, self.strides):
            total = max(-(-size // stride) * stride - stride + kernel - size, 0)
            pads.append((total // 2, total - total // 2))
        return pads


class PeepholeGates(layers.Layer):
    """Expansion ``E u + b`` (1x1, ``r -> 4F``) and the peephole LSTM update.

    Gate order is Keras' (i, f, c, o). On the torch backend with the default activations a
    fused kernel (``torch_kernels.py``) computes the same update. With peepholes
    (Shi et al. 2015, eq. 3) the input and forget gates see ``c_{t-1}`` and the output gate
    sees ``c_t``, through per-channel weights of shape ``(3, F)`` (rows i, f, o) that
    broadcast over the grid.
    Call: ``(u (B, H, W, r), c_prev (B, H, W, F)) -> (h, c)``, both ``(B, H, W, F)``.
    """

    def __init__(
        self,
        filters: int,
        activation,
        recurrent_activation,
        use_bias: bool = True,
        unit_forget_bias: bool = True,
        peephole: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.use_bias = use_bias
        self.unit_forget_bias = unit_forget_bias
        self.peephole = peephole
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def build(self, input_shape):
        self.expansion = self.add_weight(
            shape=(input_shape[-1], 4 * self.filters),
            name="expansion",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(4 * self.filters,),
                name="bias",
                initializer=self._gate_bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.peephole_kernel = None
        if self.peephole:
            self.peephole_kernel = self.add_weight(
                shape=(3, self.filters), name="peephole_kernel", initializer="zeros"
            )

    def _gate_bias_initializer(self, shape, dtype=None):
        """The bias initializer, with ones on the forget gate when ``unit_forget_bias``."""
        if not self.unit_forget_bias:
            return self.bias_initializer(shape, dtype=dtype)
        quarter = (self.filters,)
        return ops.concatenate(
            [
                self.bias_initializer(quarter, dtype=dtype),
                ops.ones(quarter, dtype=dtype),
                self.bias_initializer((2 * self.filters,), dtype=dtype),
            ]
        )

    @property
    def uses_torch_kernel(self) -> bool:
        """Whether the fused PyTorch kernel computes this update (same math, faster)."""
        return (
            backend.backend() == "torch"
            and self.compute_dtype == "float32"
            and self.activation is activations.tanh
            and self.recurrent_activation is activations.sigmoid
        )

    def call(self, u, c_prev):
        if self.uses_torch_kernel:
            from faconvlstm.layers.torch_kernels import peephole_lstm_update

            return peephole_lstm_update(
                u,
                self.expansion.value,
                None if self.bias is None else self.bias.value,
                None if self.peephole_kernel is None else self.peephole_kernel.value,
                c_prev,
            )
        z = ops.matmul(u, self.expansion)
        if self.bias is not None:
            z = z + self.bias
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        if self.peephole_kernel is not None:
            peep_i, peep_f, peep_o = (self.peephole_kernel[row] for row in range(3))
            z_i = z_i + peep_i * c_prev
            z_f = z_f + peep_f * c_prev
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_prev + i * self.activation(z_c)
        if self.peephole_kernel is not None:
            z_o = z_o + peep_o * c
        h = self.recurrent_activation(z_o) * self.activation(c)
        return h, c
