"""SeasonalPositionalEncoding and TemporalSelfAttention: values, causality, config, saving."""

import keras
import numpy as np
import pytest
from scipy.special import erf

from faconvlstm import InputError
from faconvlstm.layers import SeasonalPositionalEncoding, SubspaceHead, TemporalSelfAttention


def encode(year_fraction, **options) -> np.ndarray:
    layer = SeasonalPositionalEncoding(**options)
    return keras.ops.convert_to_numpy(layer(np.asarray(year_fraction, "float32")))


# ----------------------------------------------------------------------- positional encoding
def test_seasonal_harmonics_at_known_phases():
    encoding = encode([[0.0, 0.25, 0.5]], harmonics=2, position_dim=0)
    expected = [[0, 1, 0, 1],     # phi = 0: sin 0, cos 0, sin 0, cos 0
                [1, 0, 0, -1],    # phi = 1/4: sin pi/2, cos pi/2, sin pi, cos pi
                [0, -1, 0, 1]]    # phi = 1/2: sin pi, cos pi, sin 2 pi, cos 2 pi
    np.testing.assert_allclose(encoding[0], expected, atol=1e-6)


def test_no_jump_across_the_year_boundary():
    encoding = encode([[0.999, 0.0, 0.5]], harmonics=3, position_dim=0)[0]
    assert np.abs(encoding[0] - encoding[1]).max() < 2 * np.pi * 3 * 0.001 + 1e-6
    assert np.abs(encoding[2] - encoding[1]).max() > 1.9


def test_position_part_is_the_transformer_encoding(rng):
    steps, position_dim = 5, 6
    phases = rng.uniform(size=(2, steps))
    encoding = encode(phases, harmonics=1, position_dim=position_dim)
    t = np.arange(steps)[:, None]
    frequencies = 10000.0 ** (-2 * np.arange(position_dim // 2) / position_dim)
    expected = np.zeros((steps, position_dim))
    expected[:, 0::2] = np.sin(t * frequencies)
    expected[:, 1::2] = np.cos(t * frequencies)
    for sample in range(2):
        np.testing.assert_allclose(encoding[sample, :, 2:], expected, atol=1e-5)
        np.testing.assert_allclose(encoding[sample, :, 0], np.sin(2 * np.pi * phases[sample]),
                                   atol=1e-5)


def test_encoding_shapes_with_unknown_length(rng):
    layer = SeasonalPositionalEncoding(harmonics=2, position_dim=4)
    assert layer.output_dim == 8
    assert layer.compute_output_shape((None, None)) == (None, None, 8)
    inputs = keras.Input((None,))
    model = keras.Model(inputs, layer(inputs))
    assert tuple(model.output.shape) == (None, None, 8)
    for steps in (3, 7):
        assert model.predict(rng.uniform(size=(2, steps)), verbose=0).shape == (2, steps, 8)
    assert encode([[0.1, 0.2]], harmonics=0, position_dim=2).shape == (1, 2, 2)


@pytest.mark.parametrize("options,message", [
    ({"position_dim": 5}, "`position_dim` must be even"),
    ({"position_dim": -2}, "`position_dim` must be a non-negative integer"),
    ({"harmonics": -1}, "`harmonics` must be a non-negative integer"),
    ({"harmonics": 0, "position_dim": 0}, "`harmonics` and `position_dim` cannot both be 0"),
])
def test_bad_encoding_arguments(options, message):
    with pytest.raises(InputError, match=message):
        SeasonalPositionalEncoding(**options)


def test_encoding_rejects_a_bad_rank():
    with pytest.raises(InputError, match=r"expects a \(batch, time\) year fraction"):
        SeasonalPositionalEncoding()(np.zeros((2, 3, 1), "float32"))


def test_encoding_config_round_trip():
    layer = SeasonalPositionalEncoding(harmonics=4, position_dim=2, name="season")
    config = layer.get_config()
    assert (config["harmonics"], config["position_dim"]) == (4, 2)
    assert SeasonalPositionalEncoding.from_config(config).get_config() == config


# ----------------------------------------------------------------------- temporal attention
WIDTH, ENCODING = 6, 4


def attend(layer, z, encoding, training=False) -> np.ndarray:
    return keras.ops.convert_to_numpy(layer([z, encoding], training=training))


def sequences(rng, steps=5):
    return (rng.normal(size=(2, steps, WIDTH)).astype("float32"),
            rng.normal(size=(2, steps, ENCODING)).astype("float32"))


def test_attention_shapes_and_sublayers(rng):
    layer = TemporalSelfAttention(heads=3)
    layer.build([(None, None, WIDTH), (None, None, ENCODING)])
    sublayers = (layer.attention, layer.attention_norm, layer.ffn_hidden, layer.ffn_output,
                 layer.ffn_norm)
    assert all(sublayer.built for sublayer in sublayers)
    assert len(layer.weights) == 1 + 8 + 2 + 2 + 2 + 2  # W_e, MHA, norm, dense, dense, norm
    assert layer.attention.key_dim == 4 and layer.attention.num_heads == 3
    assert tuple(layer.ffn_hidden.kernel.shape) == (WIDTH, 2 * WIDTH)
    assert tuple(layer.encoding_kernel.shape) == (ENCODING, WIDTH)
    z, encoding = sequences(rng)
    assert attend(layer, z, encoding).shape == z.shape
    assert layer.compute_output_shape([z.shape, encoding.shape]) == z.shape


def layer_norm(x, gamma, beta, epsilon):
    centered = x - x.mean(-1, keepdims=True)
    return centered / np.sqrt((centered**2).mean(-1, keepdims=True) + epsilon) * gamma + beta


def reference_block(layer: TemporalSelfAttention, z, encoding) -> np.ndarray:
    """The block's forward pass in float64 NumPy, weights looked up by path."""
    w = {v.path.split("/", 1)[1]: np.asarray(v.numpy(), np.float64) for v in layer.weights}
    epsilon = layer.attention_norm.epsilon
    x = layer_norm(z, w["attention_norm/gamma"], w["attention_norm/beta"], epsilon)
    x = x + encoding @ w["encoding_kernel"]
    query, key, value = (
        np.einsum("btd,dhk->bthk", x, w[f"attention/{name}/kernel"]) + w[f"attention/{name}/bias"]
        for name in ("query", "key", "value")
    )
    scores = np.einsum("bqhk,bshk->bhqs", query, key) / np.sqrt(query.shape[-1])
    if layer.causal:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], bool)), scores, -np.inf)
    probabilities = np.exp(scores - scores.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    attended = np.einsum("bhqs,bshk->bqhk", probabilities, value)
    attended = np.einsum("bqhk,hkd->bqd", attended, w["attention/attention_output/kernel"])
    gates = w.get("residual_gates", np.ones(2))
    y = z + gates[0] * (attended + w["attention/attention_output/bias"])
    normed = layer_norm(y, w["ffn_norm/gamma"], w["ffn_norm/beta"], epsilon)
    hidden = normed @ w["ffn_hidden/kernel"] + w["ffn_hidden/bias"]
    hidden = 0.5 * hidden * (1 + erf(hidden / np.sqrt(2)))
    return y + gates[1] * (hidden @ w["ffn_output/kernel"] + w["ffn_output/bias"])


@pytest.mark.parametrize("causal,gated", [(True, False), (False, True)],
                         ids=["causal", "non_causal-gated"])
@pytest.mark.backend
def test_block_matches_numpy(rng, causal, gated):
    layer = TemporalSelfAttention(heads=2, key_dim=3, ffn_multiplier=3, causal=causal,
                                  gated_residuals=gated)
    z, encoding = sequences(rng)
    layer.build([z.shape, encoding.shape])
    for weight in layer.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype("float32"))
    np.testing.assert_allclose(attend(layer, z, encoding), reference_block(layer, z, encoding),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "non_causal"])
def test_causal_mode_ignores_the_future(rng, causal):
    layer = TemporalSelfAttention(causal=causal)
    z, encoding = sequences(rng)
    before = attend(layer, z, encoding)
    z[:, 3:] += 1.0
    encoding[:, 3:] -= 1.0
    after = attend(layer, z, encoding)
    past_changed = np.abs(after[:, :3] - before[:, :3]).max()
    if causal:
        assert past_changed < 1e-5
    else:
        assert past_changed > 1e-3
    assert np.abs(after[:, 3:] - before[:, 3:]).max() > 1e-3


def test_gated_residuals_start_as_the_identity_and_learn_their_gates(rng):
    from tests.layers.helpers import trainable_gradients

    z, encoding = sequences(rng)
    inputs = [keras.Input((None, WIDTH)), keras.Input((None, ENCODING))]
    block = TemporalSelfAttention(gated_residuals=True)
    model = keras.Model(inputs, block(inputs))
    np.testing.assert_array_equal(attend(block, z, encoding), z)
    target = rng.normal(size=z.shape).astype("float32")
    gradients = trainable_gradients(model, [z, encoding], target)
    gate_gradient = next(g for path, g in gradients.items() if path.endswith("residual_gates"))
    assert np.all(np.abs(gate_gradient) > 1e-6)


def test_encoding_changes_the_output(rng):
    layer = TemporalSelfAttention()
    z, encoding = sequences(rng)
    assert np.abs(attend(layer, z, encoding) - attend(layer, z, 0 * encoding)).max() > 1e-3


def test_dropout_acts_only_in_training(rng):
    layer = TemporalSelfAttention(dropout=0.5)
    z, encoding = sequences(rng)
    np.testing.assert_array_equal(attend(layer, z, encoding), attend(layer, z, encoding))
    dropped = attend(layer, z, encoding, training=True)
    assert np.abs(dropped - attend(layer, z, encoding)).max() > 1e-3


def test_attention_config_round_trip():
    layer = TemporalSelfAttention(heads=3, key_dim=5, ffn_multiplier=4, dropout=0.2,
                                  causal=True, gated_residuals=True, name="temporal")
    config = layer.get_config()
    names = ("heads", "key_dim", "ffn_multiplier", "dropout", "causal", "gated_residuals")
    assert {k: config[k] for k in names} == {
        "heads": 3, "key_dim": 5, "ffn_multiplier": 4, "dropout": 0.2, "causal": True,
        "gated_residuals": True}
    assert TemporalSelfAttention.from_config(config).get_config() == config


@pytest.mark.parametrize("options,message", [
    ({"heads": 0}, "`heads` must be a positive integer"),
    ({"key_dim": 0}, "`key_dim` must be a positive integer"),
    ({"ffn_multiplier": 1.5}, "`ffn_multiplier` must be a positive integer"),
    ({"dropout": 1.0}, r"`dropout` must be a float in \[0, 1\)"),
])
def test_bad_attention_arguments(options, message):
    with pytest.raises(InputError, match=message):
        TemporalSelfAttention(**options)


def test_attention_rejects_bad_shapes():
    with pytest.raises(InputError, match=r"expects \[z, encoding\]"):
        TemporalSelfAttention().build([(2, 5, 3, WIDTH), (2, 5, ENCODING)])


# ----------------------------------------------------------------------- the three together
@pytest.mark.backend
def test_keras_file_round_trip_of_all_three_layers(rng, tmp_path):
    features = keras.Input((None, None, None, 3))
    weights = keras.Input((None, None, None))
    year_fraction = keras.Input((None,))
    embedding = SubspaceHead(embedding_dim=4, projection_dim=3)([features, weights])
    encoding = SeasonalPositionalEncoding(harmonics=2, position_dim=4)(year_fraction)
    outputs = TemporalSelfAttention(heads=2, causal=True)([embedding, encoding])
    model = keras.Model([features, weights, year_fraction], outputs)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.3, weight.shape).astype("float32"))
    x = [rng.normal(size=(2, 4, 3, 5, 3)).astype("float32"),
         (rng.uniform(size=(2, 4, 3, 5)) > 0.3).astype("float32"),
         rng.uniform(size=(2, 4)).astype("float32")]
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
