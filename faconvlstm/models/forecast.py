"""Latent forecasts: from the embedding of step t, the embeddings that decode steps t+1..t+h."""

from __future__ import annotations

import keras
from keras import layers, ops

from faconvlstm import validation
from faconvlstm.errors import InputError

#: How the latent forecasts of the leads relate: one learned map per lead, or the powers of
#: one map (a learned linear inverse model in the embedding space).
DYNAMICS = ("per-lead", "linear")


@keras.saving.register_keras_serializable(package="faconvlstm")
class LatentLeads(layers.Layer):
    """``z (B, T, d) -> (B, T, 1 + h, d)``: lead 0 is ``z`` itself, lead ``k`` a linear map of it.

    With ``dynamics="per-lead"`` lead ``k`` is ``z A_k + c_k``, one ``d x d`` map per lead;
    with ``"linear"`` it is ``z`` advanced ``k`` times by one map, ``z_{k} = z_{k-1} A + c``,
    latent linear dynamics. Every map starts at the identity (persistence) and its offset at
    zero. The decoder turns each lead into a field, so ``z_t`` is trained to carry what the
    fields ``t..t+h`` need. ``horizon=0`` gives lead 0 alone (a plain autoencoder).
    """

    def __init__(self, horizon: int, dynamics: str = "per-lead", **kwargs):
        super().__init__(**kwargs)
        self.horizon = validation.non_negative_int(horizon, "horizon")
        if dynamics not in DYNAMICS:
            raise InputError(f"dynamics must be one of {DYNAMICS}; got {dynamics!r}.")
        self.dynamics = dynamics

    def build(self, input_shape):
        width = input_shape[-1]
        maps = self.horizon if self.dynamics == "per-lead" else min(self.horizon, 1)
        # Without leads the (empty) weights are not trained: no optimizer warns of them.
        self.maps = self.add_weight(
            shape=(maps, width, width), name="maps", trainable=maps > 0,
            initializer=lambda shape, dtype=None: ops.tile(ops.eye(width, dtype=dtype)[None],
                                                          (shape[0], 1, 1)),
        )
        self.offsets = self.add_weight(shape=(maps, width), name="offsets", initializer="zeros",
                                       trainable=maps > 0)

    def call(self, z):
        leads = [z]
        for lead in range(self.horizon):
            index = lead if self.dynamics == "per-lead" else 0
            source = z if self.dynamics == "per-lead" else leads[-1]
            leads.append(ops.matmul(source, self.maps[index]) + self.offsets[index])
        return ops.stack(leads, axis=-2)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.horizon + 1, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon, "dynamics": self.dynamics}
