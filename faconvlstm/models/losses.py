"""The reconstruction loss: area-weighted MSE over valid cells only."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="faconvlstm")
class MaskedReconstructionLoss(layers.Layer):
    """Adds ``sum(w (x_hat - x)^2) / sum(w)`` to the model's losses; returns ``x_hat``.

    ``weights`` is the cell area (cos latitude) where a value is valid and 0 where it is not
    (land, missing), so invalid cells contribute exactly nothing, whatever was filled in.
    Inputs ``[reconstruction, frames, weights]``, each ``(B, T, H, W, C)``.
    """

    def call(self, inputs):
        reconstruction, frames, weights = inputs
        squared = ops.square(reconstruction - frames) * weights
        total_weight = ops.maximum(ops.sum(weights), keras.backend.epsilon())
        self.add_loss(ops.sum(squared) / total_weight)
        return reconstruction

    def compute_output_shape(self, input_shape):
        return input_shape[0]
