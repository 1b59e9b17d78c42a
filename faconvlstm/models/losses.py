"""The loss on fields: area-weighted MSE over valid cells only, at every lead."""

from __future__ import annotations

import keras
from keras import layers, ops

from faconvlstm import validation


@keras.saving.register_keras_serializable(package="faconvlstm")
class MaskedLeadLoss(layers.Layer):
    """Adds ``s L_0 + (1 - s) mean_k L_k`` with ``L_k = sum(w (x_hat - x)^2) / sum(w)`` the
    masked error of lead ``k`` and ``s`` the ``reconstruction_share`` (``L_0`` alone without
    forecast leads); returns the leads.

    Inputs ``[predicted, frames, weights]``: ``predicted (B, T, 1 + h, H, W, C)`` holds, for
    each step ``t`` of the window, lead 0 (the reconstruction of step ``t``) and leads
    ``k = 1..h`` (forecasts of step ``t + k``); ``frames`` and ``weights`` are
    ``(B, T, H, W, C)``. Lead ``k`` is scored on the steps whose target ``t + k`` lies inside
    the window (``T - k`` of them). ``weights`` is the cell area (cos latitude) where a value
    is valid and 0 where it is not (land, missing), so invalid cells contribute exactly
    nothing, whatever was filled in.
    """

    def __init__(self, reconstruction_share: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.reconstruction_share = validation.rate(reconstruction_share, "reconstruction_share")

    def call(self, inputs):
        predicted, frames, weights = inputs
        steps = ops.shape(frames)[1]
        per_lead = []
        for lead in range(predicted.shape[2]):
            forecast = predicted[:, : steps - lead, lead]
            target, weight = frames[:, lead:], weights[:, lead:]
            total = ops.maximum(ops.sum(weight), keras.backend.epsilon())
            per_lead.append(ops.sum(ops.square(forecast - target) * weight) / total)
        loss = per_lead[0]
        if len(per_lead) > 1:
            share = self.reconstruction_share
            loss = share * loss + (1.0 - share) * ops.mean(ops.stack(per_lead[1:]))
        self.add_loss(loss)
        return predicted

    def get_config(self):
        return {**super().get_config(), "reconstruction_share": self.reconstruction_share}

    def compute_output_shape(self, input_shape):
        return input_shape[0]
