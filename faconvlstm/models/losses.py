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


def lead_errors(predicted, frames, weights):
    """Per lead ``k``: the weighted squared error ``sum(w (x_hat - x)^2)`` of the forecasts
    whose target lies inside the window, and the weight ``sum(w)`` of those targets, each a
    ``(1 + h,)`` tensor. Shapes as :class:`MaskedLeadLoss`'s inputs.

    All leads are scored in one pass against targets shifted in time (the steps past the
    window get weight 0), so the backward pass writes one gradient of ``predicted`` rather
    than one full-size tensor per lead.
    """
    leads = predicted.shape[2]
    targets, target_weights = (_shifted(tensor, leads) for tensor in (frames, weights))
    axes = (0, 1, 3, 4, 5)
    errors = ops.sum(ops.square(predicted - targets) * target_weights, axis=axes)
    return errors, ops.sum(target_weights, axis=axes)


def _shifted(sequence, leads: int):
    """``(B, T, ...) -> (B, T, leads, ...)``: at lead ``k`` the step ``t + k``, zero where
    ``t + k`` is past the window."""
    batch, steps, *cells = ops.shape(sequence)
    past_the_window = ops.zeros((batch, leads - 1, *cells), dtype=sequence.dtype)
    padded = ops.concatenate([sequence, past_the_window], axis=1)
    return ops.stack([padded[:, lead : lead + steps] for lead in range(leads)], axis=2)


def lead_loss(errors, totals, reconstruction_share: float):
    """``s L_0 + (1 - s) mean_k L_k`` with ``L_k = errors[k] / totals[k]`` (``(1 + h,)``
    tensors); ``L_0`` alone for one lead."""
    losses = errors / ops.maximum(totals, keras.backend.epsilon())
    if losses.shape[0] == 1:
        return losses[0]
    share = reconstruction_share
    return share * losses[0] + (1.0 - share) * ops.mean(losses[1:])
