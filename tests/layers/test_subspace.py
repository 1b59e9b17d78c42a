"""SubspaceHead: pooling against NumPy, masked cells, the orthogonality penalty, config, errors;
its batch standardization against Keras' batch normalization and old checkpoints."""

import itertools

import keras
import numpy as np
import pytest

from faconvlstm.errors import InputError
from faconvlstm.layers import SubspaceHead, subspace
from faconvlstm.layers.normalization import BatchStandardization

FEATURES = 4


def built_head(grid=(None, None), **options) -> SubspaceHead:
    head = SubspaceHead(**options)
    head.build([(None, None, *grid, FEATURES), (None, None, *grid)])
    return head


def sample(rng, batch=2, steps=3, rows=4, cols=5):
    features = rng.normal(size=(batch, steps, rows, cols, FEATURES)).astype("float32")
    area = np.cos(np.deg2rad(np.linspace(-60, 60, rows)))[:, None] * np.ones(cols)
    valid = rng.uniform(size=(batch, steps, rows, cols)) > 0.3
    return features, (area * valid).astype("float32")


def randomize(head: SubspaceHead, rng, zero_attention=False) -> None:
    for weight in head.trainable_weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype("float32"))
    if zero_attention:
        head.attention_kernel.assign(np.zeros(head.attention_kernel.shape, "float32"))


def reference_head(head: SubspaceHead, features, weights, training=False) -> np.ndarray:
    """The head's forward pass in float64 NumPy, one step at a time.

    The pooled features are standardized with the batch's statistics in training and with the
    moving ones otherwise."""
    kernel, bias, attention, basis, basis_bias = (
        np.asarray(w.numpy(), np.float64)
        for w in (head.projection_kernel, head.projection_bias, head.attention_kernel,
                  head.basis, head.bias)
    )
    batch, steps = weights.shape[:2]
    pooled = np.zeros((batch, steps, basis.shape[0]))
    for b in range(batch):
        for t in range(steps):
            w = weights[b, t].reshape(-1).astype(np.float64)
            v = features[b, t].reshape(-1, FEATURES) @ kernel + bias
            mean = (w[:, None] * v).sum(0) / max(w.sum(), 1e-6)
            logits = (v @ attention)[:, 0]
            scores = np.where(w > 0, np.exp(logits - logits[w > 0].max(initial=0.0)), 0.0)
            attended = (scores[:, None] * v).sum(0) / max(scores.sum(), 1e-6)
            parts = [mean, attended]
            if head.map_kernel is not None:
                maps = np.asarray(head.map_kernel.numpy(), np.float64).reshape(len(w), -1)
                directions = v @ np.asarray(head.map_features.numpy(), np.float64)
                parts.append((w[:, None] * maps * directions).sum(0) / max(w.sum(), 1e-6))
            pooled[b, t] = np.concatenate(parts)
    norm = head.pooled_norm
    if training:
        center, variance = pooled.mean((0, 1)), pooled.var((0, 1))
    else:
        center, variance = (np.asarray(w.numpy(), np.float64)
                            for w in (norm.moving_mean, norm.moving_variance))
    pooled = (pooled - center) / np.sqrt(variance + norm.epsilon)
    return pooled @ basis + basis_bias


def test_output_shape(rng):
    features, weights = sample(rng)
    head = SubspaceHead(embedding_dim=6, projection_dim=3)
    assert tuple(head([features, weights]).shape) == (2, 3, 6)
    assert head.compute_output_shape([features.shape, weights.shape]) == (2, 3, 6)
    assert tuple(head.basis.shape) == (6, 6)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("zero_attention", [True, False], ids=["zero_logits", "random_logits"])
@pytest.mark.backend
def test_pooling_matches_numpy(rng, zero_attention, training):
    """With zero logits the attention pooling is the plain mean over valid cells."""
    features, weights = sample(rng)
    head = built_head(embedding_dim=5)
    randomize(head, rng, zero_attention)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(head([features, weights], training=training)),
        reference_head(head, features, weights, training), rtol=1e-4, atol=1e-4,
    )


@pytest.mark.backend
def test_spatial_map_pooling_matches_numpy(rng):
    features, weights = sample(rng)
    head = built_head(grid=(4, 5), embedding_dim=7, projection_dim=3, spatial_maps=2)
    randomize(head, rng)
    assert tuple(head.basis.shape) == (8, 7) and tuple(head.map_kernel.shape) == (4, 5, 2)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(head([features, weights], training=True)),
        reference_head(head, features, weights, training=True), rtol=1e-4, atol=1e-4,
    )


@pytest.mark.parametrize("spatial_maps", [0, 3])
def test_only_spatial_maps_tell_a_pattern_from_its_mirror_image(rng, spatial_maps):
    """Both poolings are blind to where a feature occurs; the learned maps are not."""
    features, _ = sample(rng, batch=1, steps=2)
    weights = np.ones(features.shape[:-1], "float32")
    mirrored = features[:, :, :, ::-1]
    head = built_head(grid=(4, 5), embedding_dim=4, spatial_maps=spatial_maps)
    randomize(head, rng)
    embedded, embedded_mirror = (
        keras.ops.convert_to_numpy(head([x, weights])) for x in (features, mirrored)
    )
    difference = np.abs(embedded - embedded_mirror).max()
    assert difference > 1e-3 if spatial_maps else difference < 1e-5


def test_spatial_maps_need_the_grid_at_build_time():
    with pytest.raises(InputError, match="spatial_maps=2 needs the grid at build time"):
        built_head(embedding_dim=3, spatial_maps=2)


def test_cells_with_zero_weight_do_not_influence_the_output(rng):
    features, weights = sample(rng)
    weights[1, 2] = 0.0  # a step without any valid cell
    head = built_head(embedding_dim=5)
    randomize(head, rng)
    output = keras.ops.convert_to_numpy(head([features, weights]))
    changed = features.copy()
    changed[weights == 0] = rng.normal(0.0, 100.0, changed[weights == 0].shape)
    changed[0, 0][weights[0, 0] == 0] = np.nan
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(head([changed, weights])), output)
    assert np.all(np.isfinite(output))
    np.testing.assert_allclose(output[1, 2], head.bias.numpy(), atol=1e-6)


def test_unknown_grid(rng):
    features = keras.Input((None, None, None, FEATURES))
    weights = keras.Input((None, None, None))
    model = keras.Model([features, weights], SubspaceHead(embedding_dim=3)([features, weights]))
    assert tuple(model.output.shape) == (None, None, 3)
    for rows, cols in ((3, 4), (5, 2)):
        assert model.predict(sample(rng, steps=2, rows=rows, cols=cols), verbose=0).shape == (
            2, 2, 3)


def numpy_penalty(head: SubspaceHead) -> float:
    basis = np.asarray(head.basis.numpy(), np.float64)
    gram = basis.T @ basis - np.eye(basis.shape[1])
    return head.orthogonality * float((gram**2).sum())


def penalty_gradient(head: SubspaceHead) -> np.ndarray:
    """d(penalty)/d(basis) on the active backend."""
    if keras.backend.backend() == "torch":
        head.basis.value.grad = None
        head.orthogonality_penalty().backward()
        return head.basis.value.grad.numpy()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            penalty = head.orthogonality_penalty()
        return tape.gradient(penalty, head.basis.value).numpy()
    import jax

    def penalty(basis):
        with keras.StatelessScope(state_mapping=[(head.basis, basis)]):
            return head.orthogonality_penalty()

    return np.asarray(jax.grad(penalty)(head.basis.value))


def test_penalty_is_zero_for_an_orthonormal_basis_and_positive_otherwise(rng):
    head = built_head(embedding_dim=6, orthogonality=0.5)
    assert float(keras.ops.convert_to_numpy(head.orthogonality_penalty())) < 1e-10
    head.basis.assign(head.basis.numpy() * 1.5)  # columns of norm 1.5: gram = 2.25 I
    expected = 0.5 * 6 * 1.25**2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head.orthogonality_penalty()),
                               expected, rtol=1e-5)
    head.basis.assign(rng.normal(size=head.basis.shape).astype("float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head.orthogonality_penalty()),
                               numpy_penalty(head), rtol=1e-4)


@pytest.mark.backend
def test_gradient_steps_on_the_penalty_reduce_it(rng):
    head = built_head(embedding_dim=5, orthogonality=1.0)
    head.basis.assign(rng.normal(0.0, 0.6, head.basis.shape).astype("float32"))
    basis = np.asarray(head.basis.numpy(), np.float64)
    np.testing.assert_allclose(penalty_gradient(head),
                               4 * basis @ (basis.T @ basis - np.eye(5)), rtol=1e-4, atol=1e-5)
    penalties = [numpy_penalty(head)]
    for _ in range(5):
        head.basis.assign(head.basis.numpy() - 0.02 * penalty_gradient(head))
        penalties.append(numpy_penalty(head))
    assert all(later < earlier for earlier, later in itertools.pairwise(penalties))
    assert penalties[-1] < 0.5 * penalties[0]


def test_the_penalty_is_a_model_loss(rng):
    features, weights = sample(rng)
    inputs = [keras.Input((None, None, None, FEATURES)), keras.Input((None, None, None))]
    head = SubspaceHead(embedding_dim=4, orthogonality=0.1)
    model = keras.Model(inputs, head(inputs))
    head.basis.assign(rng.normal(size=head.basis.shape).astype("float32"))
    model([features, weights])
    assert len(model.losses) == 1
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.losses[0]),
                               numpy_penalty(head), rtol=1e-4)


def test_no_loss_without_orthogonality(rng):
    head = SubspaceHead(embedding_dim=4, orthogonality=0.0)
    head(sample(rng))
    assert head.losses == []


def test_config_round_trip():
    head = SubspaceHead(embedding_dim=5, projection_dim=3, orthogonality=0.25, spatial_maps=2,
                        name="head")
    config = head.get_config()
    names = ("embedding_dim", "projection_dim", "orthogonality", "spatial_maps")
    assert {k: config[k] for k in names} == {
        "embedding_dim": 5, "projection_dim": 3, "orthogonality": 0.25, "spatial_maps": 2}
    assert SubspaceHead.from_config(config).get_config() == config


@pytest.mark.parametrize("options,message", [
    ({"embedding_dim": 0}, "`embedding_dim` must be a positive integer"),
    ({"projection_dim": -2}, "`projection_dim` must be a positive integer"),
    ({"orthogonality": -0.1}, "`orthogonality` must be a non-negative float"),
    ({"embedding_dim": 7, "projection_dim": 3},
     r"`embedding_dim` must be at most 2 \* `projection_dim`.*embedding_dim=7.*projection_dim=3"),
    ({"spatial_maps": -1}, "`spatial_maps` must be"),
])
def test_bad_arguments(options, message):
    with pytest.raises(InputError, match=message):
        SubspaceHead(**options)


def test_embedding_wider_than_the_default_projection_fails_at_build():
    with pytest.raises(InputError, match=r"embedding_dim=9, projection_dim=4 and spatial_maps=0"):
        built_head(embedding_dim=9)


@pytest.mark.parametrize("shapes", [
    [(2, 3, 4, 5, FEATURES)],
    [(2, 3, 4, FEATURES), (2, 3, 4)],
    [(2, 3, 4, 5, FEATURES), (2, 3, 4, 5, 1)],
])
def test_bad_input_shapes(shapes):
    with pytest.raises(InputError, match="expects \\[h, weights\\]"):
        SubspaceHead(embedding_dim=2).build(shapes)


def pooled_features(rng, batch=3, steps=4, features=6) -> np.ndarray:
    """Pooled-like features ``(B, T, features)`` with a mean and a scale of their own each."""
    center = rng.normal(0.0, 3.0, features)
    scale = rng.uniform(0.2, 4.0, features)
    return (center + scale * rng.normal(size=(batch, steps, features))).astype("float32")


@pytest.mark.backend
def test_batch_standardization_matches_keras_batch_normalization(rng):
    """Same outputs and moving statistics over training batches, then the same inference."""
    ours = BatchStandardization(momentum=0.9, epsilon=1e-3)
    keras_norm = keras.layers.BatchNormalization(momentum=0.9, center=False, scale=False)
    for _ in range(3):
        batch = pooled_features(rng)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours(batch, training=True)),
            keras.ops.convert_to_numpy(keras_norm(batch, training=True)), rtol=1e-5, atol=1e-5,
        )
        for weight, expected in zip(ours.weights, keras_norm.weights, strict=True):
            np.testing.assert_allclose(weight.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours.moving_mean.numpy(), 0.0)  # the statistics did move
    batch = pooled_features(rng)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(batch)),
        keras.ops.convert_to_numpy(keras_norm(batch, training=False)), rtol=1e-5, atol=1e-5,
    )
    assert [(w.name, w.trainable) for w in ours.weights] == [
        (w.name, w.trainable) for w in keras_norm.weights]


def test_batch_standardization_standardizes_with_its_moments_hook(rng):
    """Training batches take their statistics from ``moments``, replaceable on an instance;
    inference does not call it."""
    norm = BatchStandardization(momentum=0.5)
    batch = pooled_features(rng, features=2)
    mean, variance = np.array([1.0, -2.0], "float32"), np.array([4.0, 0.25], "float32")
    calls = []

    def moments(inputs):
        calls.append(tuple(inputs.shape))
        return keras.ops.convert_to_tensor(mean), keras.ops.convert_to_tensor(variance)

    norm.build(batch.shape)
    norm.moments = moments
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm(batch, training=True)),
                               (batch - mean) / np.sqrt(variance + 1e-3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.moving_mean.numpy(), 0.5 * mean, rtol=1e-6)
    np.testing.assert_allclose(norm.moving_variance.numpy(), 0.5 + 0.5 * variance, rtol=1e-6)
    norm(batch)
    assert calls == [batch.shape]


def test_batch_standardization_moments_are_over_every_axis_but_the_last(rng):
    batch = pooled_features(rng)
    mean, variance = BatchStandardization().moments(keras.ops.convert_to_tensor(batch))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mean), batch.mean((0, 1)), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variance), batch.var((0, 1)),
                               rtol=1e-4)


def test_batch_standardization_config_round_trip():
    norm = BatchStandardization(momentum=0.75, epsilon=1e-5, name="norm")
    config = norm.get_config()
    assert (config["momentum"], config["epsilon"]) == (0.75, 1e-5)
    assert BatchStandardization.from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(norm)
    assert serialized["registered_name"] == "faconvlstm>BatchStandardization"
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config


@pytest.mark.parametrize("options,message", [
    ({"momentum": 1.0}, r"`momentum` must be a float in \[0, 1\); received momentum=1.0"),
    ({"momentum": "0.9"}, r"`momentum` must be a float in \[0, 1\)"),
    ({"epsilon": 0.0}, "`epsilon` must be a positive float; received epsilon=0.0"),
    ({"epsilon": True}, "`epsilon` must be a positive float"),
])
def test_batch_standardization_bad_arguments(options, message):
    with pytest.raises(InputError, match=message):
        BatchStandardization(**options)


#: The head's weights as they were with Keras' BatchNormalization(center=False, scale=False)
#: as ``pooled_norm`` (features 4, default projection, embedding 3): their paths in a
#: checkpoint and their shapes, in order.
HEAD_WEIGHTS = [
    ("head/projection_kernel", (4, 4)), ("head/projection_bias", (4,)),
    ("head/attention_kernel", (4, 1)), ("head/basis", (8, 3)), ("head/bias", (3,)),
    ("head/pooled_norm/moving_mean", (8,)), ("head/pooled_norm/moving_variance", (8,)),
]


def head_model() -> keras.Model:
    inputs = [keras.Input((None, None, None, FEATURES)), keras.Input((None, None, None))]
    return keras.Model(inputs, SubspaceHead(embedding_dim=3, name="head")(inputs))


def test_a_checkpoint_of_the_head_with_keras_batch_normalization_loads(
    rng, tmp_path, monkeypatch
):
    """A ``.keras`` file saved when ``pooled_norm`` was Keras' BatchNormalization loads into
    today's head with the same weights and outputs."""
    with monkeypatch.context() as patch:
        patch.setattr(subspace, "BatchStandardization", lambda **options: (
            keras.layers.BatchNormalization(center=False, scale=False, **options)))
        old = head_model()
    old_head = old.get_layer("head")
    assert type(old_head.pooled_norm) is keras.layers.BatchNormalization
    assert old_head.pooled_norm.momentum == subspace.POOLED_NORM_MOMENTUM
    features, weights = sample(rng)
    for _ in range(2):
        old_head([features, weights], training=True)
    assert not np.allclose(old_head.pooled_norm.moving_variance.numpy(), 1.0, atol=1e-2)
    old.save(tmp_path / "old.keras")
    new = keras.saving.load_model(tmp_path / "old.keras")
    new_head = new.get_layer("head")
    assert type(new_head.pooled_norm) is BatchStandardization
    assert new_head.pooled_norm.momentum == old_head.pooled_norm.momentum
    assert new_head.pooled_norm.epsilon == old_head.pooled_norm.epsilon
    for model in (old, new):
        assert [(w.path, tuple(w.shape)) for w in model.weights] == HEAD_WEIGHTS
    for weight, expected in zip(new.weights, old.weights, strict=True):
        np.testing.assert_array_equal(weight.numpy(), expected.numpy())
    np.testing.assert_allclose(new.predict([features, weights], verbose=0),
                               old.predict([features, weights], verbose=0), rtol=1e-6, atol=1e-6)
