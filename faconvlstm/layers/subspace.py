"""Subspace head: per-step area-weighted pooling of a feature map onto a near-orthonormal basis."""

from __future__ import annotations

from keras import initializers, layers, ops, saving

from faconvlstm import validation
from faconvlstm.errors import InputError
from faconvlstm.layers.normalization import BatchStandardization

#: Moving-average momentum of the pooled-feature statistics used at inference: fast enough
#: to settle within the first few dozen training steps (Keras' default 0.99 needs hundreds,
#: and inference before then sees features scaled by the wrong variance).
POOLED_NORM_MOMENTUM = 0.9

#: Floor of the total area weight of a step (a step with no valid cell pools to zeros).
WEIGHT_EPSILON = 1e-6


def _orthogonality(value) -> float:
    if not validation.is_number(value) or value < 0:
        raise InputError(
            "`orthogonality` must be a non-negative float (0 switches the penalty off); "
            f"received orthogonality={value!r}."
        )
    return float(value)


def _check_embedding_fits(embedding_dim: int, projection_dim: int, spatial_maps: int) -> None:
    if embedding_dim > 2 * projection_dim + spatial_maps:
        raise InputError(
            "`embedding_dim` must be at most 2 * `projection_dim` + `spatial_maps` (the basis "
            f"columns must be orthonormal); received embedding_dim={embedding_dim}, "
            f"projection_dim={projection_dim} and spatial_maps={spatial_maps}."
        )


@saving.register_keras_serializable(package="faconvlstm")
class SubspaceHead(layers.Layer):
    """Embed each step of a feature map: 1x1 projection, area-weighted poolings, a basis.

    ``[h, weights]`` with ``h`` ``(B, T, H, W, F)`` and non-negative ``weights`` ``(B, T, H, W)``
    (cos-latitude area times cell validity) -> ``(B, T, embedding_dim)``.

    ``v = h P + b`` (``P``: ``F -> projection_dim``, default ``F``) is pooled over the grid:
    the weighted mean ``sum(w v) / sum(w)`` and an attention pooling (softmax of ``v a`` over the
    cells with ``w > 0``). Both poolings are blind to where on the grid a feature occurs; with
    ``spatial_maps = m > 0`` the head also learns ``m`` spatial maps ``M_k (H, W)``, like EOF
    loadings, each pooling one learned feature direction ``q_k``:
    ``sum(w M_k (v q_k)) / sum(w)``, so the embedding can tell a dipole from its mirror image
    (the grid must then be known at build time). With ``normalize_pooled`` (default) the
    pooled features are standardized over the batch and time (``pooled_norm``, a :class:`BatchStandardization`:
    batch normalization without learned scale or shift): spatial means of a feature map barely
    vary in time, and unscaled they would leave the embedding almost constant.
    ``[mean, attention, maps] basis + bias`` is the embedding; the
    ``(2 * projection_dim + spatial_maps, embedding_dim)`` basis starts orthonormal and
    ``orthogonality * ||basis^T basis - I||_F^2`` is added as a loss. Cells with ``w == 0`` never
    influence the output; a step without any valid cell pools to zeros. Without spatial maps
    the grid may be unknown until call time.
    """

    def __init__(
        self,
        embedding_dim: int = 16,
        projection_dim: int | None = None,
        orthogonality: float = 1e-2,
        normalize_pooled: bool = True,
        spatial_maps: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.normalize_pooled = bool(normalize_pooled)
        self.spatial_maps = validation.non_negative_int(spatial_maps, "spatial_maps")
        self.embedding_dim = validation.positive_int(embedding_dim, "embedding_dim")
        self.projection_dim = validation.positive_int(
            projection_dim, "projection_dim", allow_none=True
        )
        self.orthogonality = _orthogonality(orthogonality)
        if self.projection_dim is not None:
            _check_embedding_fits(self.embedding_dim, self.projection_dim, self.spatial_maps)

    def build(self, input_shape):
        features_shape = self._features_shape(input_shape)
        features = features_shape[-1]
        projection_dim = self.projection_dim or features
        _check_embedding_fits(self.embedding_dim, projection_dim, self.spatial_maps)
        self.projection_kernel = self.add_weight(
            shape=(features, projection_dim), name="projection_kernel"
        )
        self.projection_bias = self.add_weight(
            shape=(projection_dim,), name="projection_bias", initializer="zeros"
        )
        self.attention_kernel = self.add_weight(
            shape=(projection_dim, 1), name="attention_kernel"
        )
        self._build_spatial_maps(features_shape[2:4], projection_dim)
        pooled_dim = 2 * projection_dim + self.spatial_maps
        self.basis = self.add_weight(
            shape=(pooled_dim, self.embedding_dim), name="basis", initializer="orthogonal"
        )
        self.bias = self.add_weight(shape=(self.embedding_dim,), name="bias", initializer="zeros")
        self.pooled_norm = None
        if self.normalize_pooled:
            self.pooled_norm = BatchStandardization(
                momentum=POOLED_NORM_MOMENTUM, dtype=self.dtype_policy, name="pooled_norm"
            )
            self.pooled_norm.build((None, None, pooled_dim))

    def _build_spatial_maps(self, grid: tuple, projection_dim: int) -> None:
        """The maps ``(H, W, m)`` and their feature directions ``(projection_dim, m)``."""
        self.map_kernel = self.map_features = None
        if not self.spatial_maps:
            return
        if None in grid:
            raise InputError(
                f"spatial_maps={self.spatial_maps} needs the grid at build time; received h "
                f"with rows x cols {grid[0]} x {grid[1]}."
            )
        self.map_kernel = self.add_weight(
            shape=(*grid, self.spatial_maps), name="map_kernel",
            initializer=initializers.RandomNormal(stddev=0.05),
        )
        self.map_features = self.add_weight(
            shape=(projection_dim, self.spatial_maps), name="map_features"
        )

    def _features_shape(self, input_shape) -> tuple:
        """The shape of ``h``, after checking both input shapes."""
        if len(input_shape) != 2 or len(input_shape[0]) != 5 or len(input_shape[1]) != 4:
            raise InputError(
                f"{self.__class__.__name__} expects [h, weights] with h (batch, time, rows, cols, "
                f"features) and weights (batch, time, rows, cols); received shapes {input_shape}."
            )
        features_shape = tuple(input_shape[0])
        if features_shape[-1] is None:
            raise InputError(
                f"The feature axis of h must be known; received h of shape {features_shape}."
            )
        return features_shape

    def orthogonality_penalty(self):
        """``orthogonality * ||basis^T basis - I||_F^2`` as a scalar tensor."""
        gram = ops.matmul(ops.transpose(self.basis), self.basis)
        deviation = gram - ops.eye(self.embedding_dim, dtype=gram.dtype)
        return self.orthogonality * ops.sum(ops.square(deviation))

    def call(self, inputs, training=None):
        features, weights = inputs
        weights = ops.cast(weights, self.compute_dtype)
        valid = weights > 0
        projected = ops.matmul(features, self.projection_kernel) + self.projection_bias
        # Zeroed, not just weighted by 0: invalid cells (even NaN or inf ones) cannot leak in.
        projected = ops.where(valid[..., None], projected, 0.0)
        pooled = [self._weighted_mean(projected, weights), self._attention_pool(projected, valid)]
        if self.map_kernel is not None:
            pooled.append(self._map_pool(projected, weights))
        pooled = ops.concatenate(pooled, axis=-1)
        if self.pooled_norm is not None:
            pooled = self.pooled_norm(pooled, training=training)
        if self.orthogonality > 0:
            self.add_loss(self.orthogonality_penalty())
        return ops.matmul(pooled, self.basis) + self.bias

    @staticmethod
    def _weighted_mean(projected, weights):
        """``sum(w v) / max(sum(w), eps)`` over the grid: ``(B, T, p)``."""
        total = ops.maximum(ops.sum(weights, axis=(2, 3)), WEIGHT_EPSILON)
        return ops.sum(projected * weights[..., None], axis=(2, 3)) / total[..., None]

    def _map_pool(self, projected, weights):
        """``sum(w M_k (v q_k)) / max(sum(w), eps)`` for each map ``k``: ``(B, T, m)``."""
        directions = ops.matmul(projected, self.map_features)
        return self._weighted_mean(directions * self.map_kernel, weights)

    def _attention_pool(self, projected, valid):
        """Softmax of ``v a`` over the valid cells, applied to ``v``: ``(B, T, p)``."""
        logits = ops.squeeze(ops.matmul(projected, self.attention_kernel), axis=-1)
        # The largest valid logit of each step (any logit where a step has no valid cell).
        peak = ops.max(ops.where(valid, logits, ops.min(logits)), axis=(2, 3), keepdims=True)
        peak = ops.stop_gradient(peak)
        scores = ops.where(valid, ops.exp(ops.where(valid, logits - peak, 0.0)), 0.0)
        total = ops.maximum(ops.sum(scores, axis=(2, 3)), WEIGHT_EPSILON)
        return ops.sum(projected * scores[..., None], axis=(2, 3)) / total[..., None]

    def compute_output_shape(self, input_shape):
        features_shape = self._features_shape(input_shape)
        return (*features_shape[:2], self.embedding_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "embedding_dim": self.embedding_dim,
            "projection_dim": self.projection_dim,
            "orthogonality": self.orthogonality,
            "normalize_pooled": self.normalize_pooled,
            "spatial_maps": self.spatial_maps,
        }
