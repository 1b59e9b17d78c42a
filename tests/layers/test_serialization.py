"""get_config round trip, .keras save/load, and loading on another backend."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import faconvlstm.layers
from faconvlstm import FAConvLSTM2D

#: Constructor arguments of the exported layers that have required ones.
EXPORTED_ARGUMENTS = {"FAConvLSTM2D": {"filters": 4, "kernel_size": 3}}

NON_DEFAULT = dict(
    filters=5, kernel_size=(3, 2), strides=(2, 1), padding="same", data_format="channels_last",
    dilation_rate=(1, 1), activation="relu", recurrent_activation="hard_sigmoid", use_bias=False,
    kernel_initializer="he_normal", recurrent_initializer="glorot_normal",
    bias_initializer="ones", unit_forget_bias=False, kernel_regularizer="l2",
    recurrent_regularizer="l1", bias_regularizer="l1", activity_regularizer="l2",
    kernel_constraint="non_neg", recurrent_constraint="unit_norm", bias_constraint="max_norm",
    dropout=0.1, recurrent_dropout=0.2, seed=7, return_sequences=True, return_state=True,
    go_backwards=True, stateful=False, unroll=True, zero_output_for_mask=True, bottleneck=6,
    multiscale_dilations=(1, 3), squeeze_excitation=False, squeeze_ratio=2, peephole=False,
    attention_every=3, attention_dim=6, attention_heads=3, attention_tokens=4,
    attention_chunk=5,
)


def test_config_round_trips_every_argument():
    layer = FAConvLSTM2D(**NON_DEFAULT)
    config = layer.get_config()
    assert set(NON_DEFAULT) <= set(config)
    rebuilt = FAConvLSTM2D.from_config(config)
    assert rebuilt.get_config() == config
    for key, expected in NON_DEFAULT.items():
        if isinstance(config[key], dict):  # a serialized initializer, regularizer...
            assert config[key]["class_name"].lower().replace("_", "") in {
                "l2", "l1", "henormal", "glorotnormal", "ones", "nonneg", "unitnorm", "maxnorm"
            }, key
        else:
            assert config[key] == expected, key


def test_config_accepts_every_convlstm2d_argument():
    """Every key ConvLSTM2D's get_config emits is a valid FAConvLSTM2D argument."""
    keras_config = keras.layers.ConvLSTM2D(4, 3, unroll=True).get_config()
    layer = FAConvLSTM2D.from_config(keras_config)
    assert layer.cell.filters == 4 and layer.unroll is True
    assert layer.attention_tokens == FAConvLSTM2D(4, 3).attention_tokens > 0


def test_config_saved_before_pooled_keys_attends_to_every_cell():
    """A layer saved without ``attention_tokens`` computed attention over every cell."""
    config = FAConvLSTM2D(4, 3).get_config()
    del config["attention_tokens"]
    assert FAConvLSTM2D.from_config(config).attention_tokens == 0


def build_model(rng):
    inputs = keras.Input((3, 7, 6, 2))
    outputs = FAConvLSTM2D(4, 3, padding="same", attention_every=2, bottleneck=4)(inputs)
    model = keras.Model(inputs, outputs)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
    return model


@pytest.mark.backend
def test_keras_file_round_trip_gives_identical_outputs(rng, tmp_path):
    model = build_model(rng)
    x = rng.normal(size=(2, 3, 7, 6, 2)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[1], FAConvLSTM2D)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


LOAD_ON_OTHER_BACKEND = """
import json, sys
import numpy as np
import faconvlstm, keras
model = keras.models.load_model(sys.argv[1])
x = np.load(sys.argv[2])
print(json.dumps({"backend": faconvlstm.backend(),
                  "output": model.predict(x, verbose=0).tolist()}))
"""


#: Where each backend's file is loaded (``make test`` keeps TensorFlow in an environment of
#: its own, so files are loaded on PyTorch and JAX).
NEXT_BACKEND = {"torch": "jax", "jax": "torch", "tensorflow": "torch"}


@pytest.mark.backend
def test_keras_file_saved_on_one_backend_loads_on_another(rng, tmp_path):
    other = NEXT_BACKEND[keras.backend.backend()]
    pytest.importorskip("tensorflow" if other == "tensorflow" else other)
    model = build_model(rng)
    x = rng.normal(size=(2, 3, 7, 6, 2)).astype("float32")
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "KERAS_BACKEND": other}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_ON_OTHER_BACKEND, str(tmp_path / "model.keras"),
         str(tmp_path / "x.npy")],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["backend"] == other
    np.testing.assert_allclose(np.array(loaded["output"]), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


def test_config_with_object_arguments_round_trips_and_saves(rng, tmp_path):
    """Initializer, regularizer and constraint objects serialize like strings do."""
    options = dict(kernel_regularizer=keras.regularizers.L2(1e-4),
                   recurrent_initializer=keras.initializers.GlorotNormal(seed=1),
                   bias_constraint=keras.constraints.MaxNorm(2.0))
    layer = FAConvLSTM2D(4, 3, padding="same", **options)
    rebuilt = FAConvLSTM2D.from_config(layer.get_config())
    assert rebuilt.get_config() == layer.get_config()
    assert isinstance(rebuilt.kernel_regularizer, keras.regularizers.L2)
    inputs = keras.Input((2, 5, 5, 1))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "objects.keras")
    x = rng.normal(size=(1, 2, 5, 5, 1)).astype("float32")
    np.testing.assert_array_equal(
        keras.models.load_model(tmp_path / "objects.keras").predict(x, verbose=0),
        model.predict(x, verbose=0))


def test_hyper_parameters_are_exposed_like_convlstm2d():
    options = dict(filters=6, kernel_size=(3, 2), strides=2, padding="same", dropout=0.25)
    ours, theirs = FAConvLSTM2D(**options), keras.layers.ConvLSTM2D(**options)
    for name in ("filters", "kernel_size", "strides", "padding", "dilation_rate", "dropout",
                 "recurrent_dropout", "use_bias", "unit_forget_bias", "data_format"):
        assert getattr(ours, name) == getattr(theirs, name), name


@pytest.mark.parametrize("filters", [8, 40, 44, 57, 72, 256])
def test_default_hyper_parameters_are_valid_for_any_filter_count(filters):
    layer = FAConvLSTM2D(filters, 3, padding="same")
    assert layer.attention_dim % layer.attention_heads == 0
    out = layer(np.zeros((1, 2, 4, 4, 2), "float32"))
    assert tuple(out.shape) == (1, 4, 4, filters)


@pytest.mark.parametrize("name", faconvlstm.layers.__all__)
def test_every_exported_layer_is_registered_and_its_config_round_trips(name):
    layer_class = getattr(faconvlstm.layers, name)
    layer = layer_class(**EXPORTED_ARGUMENTS.get(name, {}))
    registered = keras.saving.get_registered_name(layer_class)
    assert keras.saving.get_registered_object(registered) is layer_class
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is layer_class
    assert restored.get_config() == layer.get_config()
