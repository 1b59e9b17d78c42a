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
        self.add_loss(lead_loss(*lead_errors(predicted, frames, weights),
                                self.reconstruction_share))
        return predicted

    def get_config(self):
        return {**super().get_config(), "reconstruction_share": self.reconstruction_share}

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def lead_errors(predicted, frames, weights) -> tuple[list, list]:
    """Per lead ``k``: the weighted squared error ``sum(w (x_hat - x)^2)`` of the forecasts
    whose target lies inside the window, and the weight ``sum(w)`` of those targets.
    Shapes as :class:`MaskedLeadLoss`'s inputs."""
    steps = ops.shape(frames)[1]
    errors, totals = [], []
    for lead in range(predicted.shape[2]):
        weight = weights[:, lead:]
        errors.append(ops.sum(ops.square(predicted[:, : steps - lead, lead] - frames[:, lead:])
                              * weight))
        totals.append(ops.sum(weight))
    return errors, totals


def lead_loss(errors: list, totals: list, reconstruction_share: float):
    """``s L_0 + (1 - s) mean_k L_k`` with ``L_k = errors[k] / totals[k]``; ``L_0`` alone for
    one lead."""
    losses = [error / ops.maximum(total, keras.backend.epsilon())
              for error, total in zip(errors, totals)]
    if len(losses) == 1:
        return losses[0]
    share = reconstruction_share
    return share * losses[0] + (1.0 - share) * ops.mean(ops.stack(losses[1:]))
