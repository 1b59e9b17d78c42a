"""Drop-in parity with keras.layers.ConvLSTM2D: shapes, states, masking, statefulness."""

import itertools

import keras
import numpy as np
import pytest

from faconvlstm import FAConvLSTM2D

SMALL = dict(filters=4, kernel_size=3, bottleneck=4, attention_dim=4, attention_every=2)


def shapes(result):
    return [tuple(t.shape) for t in keras.tree.flatten(result)]


def declared_shapes(shape_or_shapes):
    """``compute_output_shape``'s answer as a list of shapes."""
    if all(isinstance(size, int) or size is None for size in shape_or_shapes):
        return [tuple(shape_or_shapes)]
    return [tuple(shape) for shape in shape_or_shapes]


def to_numpy(result):
    return [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(result)]


LAYOUTS = [
    pytest.param(dict(padding="same"), marks=pytest.mark.backend),
    dict(padding="valid"),
    dict(padding="same", strides=2),
    dict(padding="valid", strides=(2, 1)),
    dict(padding="valid", dilation_rate=2),
    dict(padding="same", dilation_rate=(1, 2)),
]
OUTPUTS = list(itertools.product([False, True], [False, True], [False, True]))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
def test_output_and_state_shapes_match_convlstm2d(rng, data_format, layout):
    x = rng.normal(size=(2, 3, 9, 8, 3)).astype("float32")
    run_twin = keras.layers.ConvLSTM2D(4, 3, data_format=data_format, return_state=True, **layout)
    if data_format == "channels_first":
        x = np.transpose(x, (0, 1, 4, 2, 3))
    for return_sequences, return_state, go_backwards in OUTPUTS:
        options = dict(layout, data_format=data_format, return_sequences=return_sequences,
                       return_state=return_state, go_backwards=go_backwards)
        ours = FAConvLSTM2D(**SMALL, **options)
        theirs = keras.layers.ConvLSTM2D(4, 3, **options)
        expected = declared_shapes(theirs.compute_output_shape(x.shape))
        assert shapes(ours(x)) == expected, options
        assert declared_shapes(ours.compute_output_shape(x.shape)) == expected, options
    if not (keras.backend.backend() == "tensorflow" and data_format == "channels_first"):
        # TensorFlow's CPU convolutions take only channels_last, so Keras' own layer cannot
        # run channels_first there (FAConvLSTM2D computes channels_last inside).
        assert declared_shapes(run_twin.compute_output_shape(x.shape)) == shapes(run_twin(x))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_symbolic_shapes_match_convlstm2d(data_format):
    """Functional-model shapes, including channels_first with valid padding."""
    shape = (4, 3, 10, 12) if data_format == "channels_first" else (4, 10, 12, 3)
    inputs = keras.Input(shape)
    options = dict(padding="valid", strides=2, data_format=data_format, return_state=True,
                   return_sequences=True)
    ours = FAConvLSTM2D(**SMALL, **options)(inputs)
    theirs = keras.layers.ConvLSTM2D(4, 3, **options)(inputs)
    assert shapes(ours) == shapes(theirs)


@pytest.mark.backend
def test_unknown_grid_at_build_time_embeds_other_grids(rng):
    """A model built on (None, None, None, C) runs on grids of any size, square or not."""
    inputs = keras.Input((None, None, None, 3))
    model = keras.Model(inputs, FAConvLSTM2D(**SMALL, padding="same")(inputs))
    assert tuple(model.output.shape) == (None, None, None, 4)
    for grid in [(6, 6), (7, 11), (12, 5)]:
        x = rng.normal(size=(2, 3, *grid, 3)).astype("float32")
        assert model.predict(x, verbose=0).shape == (2, *grid, 4)


def test_swapping_the_class_in_a_model_just_works(rng):
    """The same code with ConvLSTM2D replaced by FAConvLSTM2D trains and predicts."""
    x = rng.normal(size=(4, 3, 8, 8, 2)).astype("float32")
    y = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    for layer_class in (keras.layers.ConvLSTM2D, FAConvLSTM2D):
        model = keras.Sequential([
            keras.Input((3, 8, 8, 2)),
            layer_class(filters=4, kernel_size=(3, 3), padding="same", return_sequences=True,
                        dropout=0.1, recurrent_dropout=0.1),
            layer_class(filters=4, kernel_size=(3, 3), padding="same"),
            keras.layers.Conv2D(1, 1),
        ])
        model.compile("adam", "mse")
        history = model.fit(x, y, epochs=1, batch_size=2, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert model.predict(x, verbose=0).shape == y.shape


@pytest.mark.backend
def test_masked_steps_carry_the_state_like_convlstm2d(rng):
    """A masked step leaves h and c unchanged and repeats the previous output.

    ConvLSTM2D runs unrolled (its own JAX scan fails with a (B, T) mask) and with attention
    every step the FA schedule does not depend on which steps are masked.
    """
    x = rng.normal(size=(2, 5, 6, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 0, 1, 0], [1, 0, 1, 1, 1]], dtype=bool)
    kept = [np.flatnonzero(row) for row in mask]
    options = dict(padding="same", return_sequences=True, return_state=True)
    for layer in (FAConvLSTM2D(**{**SMALL, "attention_every": 1}, **options),
                  keras.layers.ConvLSTM2D(4, 3, unroll=True, **options)):
        outputs, h, c = to_numpy(layer(x, mask=mask))
        for sample, steps in enumerate(kept):
            _, h_kept, c_kept = to_numpy(layer(x[sample:sample + 1, steps]))
            np.testing.assert_allclose(h[sample], h_kept[0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(c[sample], c_kept[0], rtol=1e-5, atol=1e-6)
            for step in range(1, 5):
                if not mask[sample, step]:
                    np.testing.assert_array_equal(outputs[sample, step], outputs[sample, step - 1])


@pytest.mark.backend
def test_zero_output_for_mask(rng):
    x = rng.normal(size=(1, 4, 5, 5, 2)).astype("float32")
    mask = np.array([[1, 0, 1, 0]], dtype=bool)
    layer = FAConvLSTM2D(**SMALL, padding="same", return_sequences=True,
                         zero_output_for_mask=True)
    outputs = to_numpy(layer(x, mask=mask))[0]
    assert np.all(outputs[0, 1] == 0) and np.all(outputs[0, 3] == 0)
    assert np.any(outputs[0, 2] != 0)


@pytest.mark.backend
def test_stateful_carries_state_and_reset_states_clears_it(rng):
    x = rng.normal(size=(2, 3, 6, 7, 3)).astype("float32")
    layer = FAConvLSTM2D(**SMALL, padding="same", stateful=True)
    inputs = keras.Input(batch_shape=x.shape)
    model = keras.Model(inputs, layer(inputs))
    first = model.predict_on_batch(x)
    second = model.predict_on_batch(x)
    assert not np.allclose(first, second), "the second batch must start from the first's state"
    h_state = keras.ops.convert_to_numpy(layer.states[0])
    np.testing.assert_allclose(h_state, second, rtol=1e-5, atol=1e-6)
    layer.reset_states()
    assert np.all(keras.ops.convert_to_numpy(layer.states[0]) == 0)
    np.testing.assert_allclose(model.predict_on_batch(x), first, rtol=1e-5, atol=1e-6)


@pytest.mark.backend
def test_dropout_is_active_in_training_only(rng):
    x = rng.normal(size=(2, 3, 6, 6, 3)).astype("float32")
    layer = FAConvLSTM2D(**SMALL, padding="same", dropout=0.5, recurrent_dropout=0.5, seed=3)
    inference = [to_numpy(layer(x, training=False))[0] for _ in range(2)]
    np.testing.assert_array_equal(*inference)
    training = to_numpy(layer(x, training=True))[0]
    assert training.shape == inference[0].shape
    assert not np.allclose(training, inference[0])


def test_stateful_states_are_non_trainable_weights():
    """The trainable weights are the non-stateful twin's; the states come on top."""
    stateful = FAConvLSTM2D(**SMALL, padding="same", stateful=True)
    stateful.build((2, 3, 6, 7, 3))
    plain = FAConvLSTM2D(**SMALL, padding="same")
    plain.build((None, 3, 6, 7, 3))
    assert len(stateful.states) == 2 and tuple(stateful.states[0].shape) == (2, 6, 7, 4)
    assert [w.shape for w in stateful.trainable_weights] == [
        w.shape for w in plain.trainable_weights]
    non_trainable = {weight.path for weight in stateful.non_trainable_weights}
    assert {state.path for state in stateful.states} <= non_trainable


def test_get_initial_state_like_convlstm2d():
    ours = FAConvLSTM2D(**SMALL, padding="valid")
    theirs = keras.layers.ConvLSTM2D(4, 3, padding="valid")
    ours.build((None, 3, 6, 7, 3))
    theirs.build((None, 3, 6, 7, 3))
    assert shapes(ours.get_initial_state(2)) == shapes(theirs.get_initial_state(2))
