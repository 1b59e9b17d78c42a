"""Batch standardization: batch normalization without learned scale or shift."""

from __future__ import annotations

from keras import backend, layers, ops, saving

from faconvlstm import validation
from faconvlstm.errors import InputError


def _epsilon(value) -> float:
    if not validation.is_number(value) or not value > 0:
        raise InputError(f"`epsilon` must be a positive float; received epsilon={value!r}.")
    return float(value)


@saving.register_keras_serializable(package="faconvlstm")
class BatchStandardization(layers.Layer):
    """Standardize ``(..., features)`` per feature: with the batch's statistics in training,
    with their moving averages at inference.

    Keras' ``BatchNormalization(center=False, scale=False)`` with the same weights
    (``moving_mean``, ``moving_variance``, in that order), except that the statistics of a
    training batch come from the public :meth:`moments`, which a data-parallel trainer may
    replace on an instance (``layer.moments = ...``) to take them over the global batch.
    After each training batch ``moving = momentum * moving + (1 - momentum) * batch``.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.momentum = validation.rate(momentum, "momentum")
        self.epsilon = _epsilon(epsilon)

    def build(self, input_shape):
        features = (input_shape[-1],)
        self.moving_mean = self.add_weight(
            shape=features, name="moving_mean", initializer="zeros", trainable=False,
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            shape=features, name="moving_variance", initializer="ones", trainable=False,
            autocast=False,
        )

    def moments(self, inputs):
        """``(mean, variance)`` of ``inputs``, each ``(features,)``, over every axis but the
        last."""
        return ops.moments(inputs, axes=tuple(range(len(inputs.shape) - 1)))

    def call(self, inputs, training=False):
        # Statistics in at least float32: float16 sums of squares overflow.
        inputs = ops.cast(inputs, backend.result_type(inputs.dtype, "float32"))
        moving_mean = ops.cast(self.moving_mean, inputs.dtype)
        moving_variance = ops.cast(self.moving_variance, inputs.dtype)
        if training and self.trainable:
            mean, variance = self.moments(inputs)
            self.moving_mean.assign(
                moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            mean, variance = moving_mean, moving_variance
        outputs = ops.batch_normalization(
            inputs, mean, variance, axis=-1, epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}
