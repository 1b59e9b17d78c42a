"""The autoencoder: shapes, the masked loss, the ConvLSTM2D twin, config and save/load."""

import keras
import numpy as np
import pytest

from faconvlstm.errors import InputError
from faconvlstm.layers import FAConvLSTM2D
from faconvlstm.models import (
    LatentLeads,
    MaskedLeadLoss,
    ModelConfig,
    build_autoencoder,
    embedding_model,
    encoder_layers,
    encoder_parameters,
)
from faconvlstm.models.autoencoder import pad_globally, training_memory_bytes
from faconvlstm.models.decoder import FrameDecoder
from tests.conftest import on_the_default_backend_only

CONFIG = {"channels": 3, "grid": (8, 9), "window": 6, "filters": (6,), "embedding_dim": 4}


def random_inputs(rng, config: ModelConfig, batch: int = 2) -> dict[str, np.ndarray]:
    shape = (batch, config.window, *config.grid, config.channels)
    weights = np.cos(np.linspace(-1, 1, config.grid[0]))[None, None, :, None, None]
    weights = np.broadcast_to(weights, shape) * (rng.random(shape) > 0.2)
    return {
        "frames": rng.normal(size=shape).astype("float32"),
        "weights": weights.astype("float32"),
        "year_fraction": rng.random((batch, config.window)).astype("float32"),
    }


def test_a_pattern_decoder_is_an_expansion_on_learned_patterns(rng):
    decoder = FrameDecoder((3, 5), channels=2, filters=0, patterns=True)
    z = rng.normal(size=(2, 4, 6)).astype("float32")
    decoder.build(z.shape)
    kernel = rng.normal(size=(6, 3 * 5 * 2)).astype("float32")
    bias = rng.normal(size=(3 * 5 * 2,)).astype("float32")
    decoder.pattern_kernel.assign(kernel)
    decoder.pattern_bias.assign(bias)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(decoder(z)), (z @ kernel + bias).reshape(2, 4, 3, 5, 2),
        rtol=1e-5, atol=1e-5,
    )
    assert FrameDecoder.from_config(decoder.get_config()).get_config() == decoder.get_config()


def test_outputs_have_the_documented_shapes(rng):
    config = ModelConfig(**CONFIG)
    assert config.forecast_horizon == 3  # the default 6, at most half the window
    outputs = build_autoencoder(config)(random_inputs(rng, config))
    assert tuple(outputs["embedding"].shape) == (2, 6, 4)
    assert tuple(outputs["reconstruction"].shape) == (2, 6, 8, 9, 3)
    assert tuple(outputs["forecast"].shape) == (2, 6, 3, 8, 9, 3)
    plain = build_autoencoder(ModelConfig(**CONFIG, forecast_horizon=0))
    assert set(plain(random_inputs(rng, config))) == {"embedding", "reconstruction"}


@pytest.mark.parametrize("share", [0.5, 0.2])
def test_the_lead_loss_weighs_the_reconstruction_against_the_mean_forecast_error(rng, share):
    batch, steps, leads = 2, 5, 3
    frames = rng.normal(size=(batch, steps, 4, 5, 2))
    predicted = rng.normal(size=(batch, steps, leads, 4, 5, 2))
    weights = rng.random(frames.shape) * (rng.random(frames.shape) > 0.5)
    layer = MaskedLeadLoss(share)
    layer([keras.ops.convert_to_tensor(a, "float32") for a in (predicted, frames, weights)])

    def error(lead):  # the forecast made at t of step t + lead, scored where it exists
        target, weight = frames[:, lead:], weights[:, lead:]
        return np.sum(weight * (predicted[:, : steps - lead, lead] - target) ** 2) / weight.sum()

    expected = share * error(0) + (1 - share) * np.mean([error(1), error(2)])
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-5)

    garbage = np.where(weights > 0, frames, 1e6)
    again = MaskedLeadLoss(share)
    again([keras.ops.convert_to_tensor(a, "float32") for a in (predicted, garbage, weights)])
    assert float(again.losses[0]) == pytest.approx(float(layer.losses[0]), rel=1e-6)
    alone = MaskedLeadLoss(share)
    alone([keras.ops.convert_to_tensor(a, "float32")
           for a in (predicted[:, :, :1], frames, weights)])
    np.testing.assert_allclose(float(alone.losses[0]), error(0), rtol=1e-5)


@pytest.mark.parametrize("dynamics", ["per-lead", "linear"])
def test_latent_leads_start_as_persistence_and_follow_their_maps(rng, dynamics):
    z = rng.normal(size=(2, 5, 4)).astype("float32")
    leads = LatentLeads(3, dynamics)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(leads(z)),
                               np.repeat(z[:, :, None], 4, axis=2), rtol=1e-6)
    maps = rng.normal(size=tuple(leads.maps.shape)).astype("float32")
    offsets = rng.normal(size=tuple(leads.offsets.shape)).astype("float32")
    leads.maps.assign(maps)
    leads.offsets.assign(offsets)
    if dynamics == "per-lead":
        expected = [z] + [z @ maps[k] + offsets[k] for k in range(3)]
    else:
        expected = [z]
        for _ in range(3):
            expected.append(expected[-1] @ maps[0] + offsets[0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(leads(z)), np.stack(expected, axis=2),
                               rtol=1e-4, atol=1e-5)
    assert LatentLeads.from_config(leads.get_config()).get_config() == leads.get_config()


@pytest.mark.parametrize("options", [{}, {"encoder": False}, {"cell": "convlstm"}],
                         ids=["fa", "encoder_off", "convlstm"])
def test_the_embedding_of_a_step_never_sees_a_later_step(rng, options):
    """Everything is causal: changing steps after t leaves the embedding and the forecasts
    made at steps up to t unchanged, so the forecast objective cannot copy the future."""
    config = ModelConfig(**CONFIG, **options)
    model = build_autoencoder(config)
    kernel = model.get_layer("decoder").pattern_kernel  # starts at 0: no forecast to compare
    kernel.assign(rng.normal(size=tuple(kernel.shape)).astype("float32"))
    inputs = random_inputs(rng, config)
    changed = dict(inputs)
    changed["frames"] = inputs["frames"].copy()
    changed["frames"][:, 4:] += rng.normal(size=changed["frames"][:, 4:].shape) * 5
    changed["year_fraction"] = inputs["year_fraction"].copy()
    changed["year_fraction"][:, 4:] = rng.random((2, 2))
    before, after = model.predict_on_batch(inputs), model.predict_on_batch(changed)
    for name in ("embedding", "forecast"):
        np.testing.assert_allclose(np.asarray(after[name])[:, :4], np.asarray(before[name])[:, :4],
                                   rtol=1e-5, atol=1e-5)
        assert not np.allclose(np.asarray(after[name])[:, 4:], np.asarray(before[name])[:, 4:])


def test_without_the_encoder_the_head_sees_the_frames_alone():
    model = build_autoencoder(ModelConfig(**CONFIG, encoder=False))
    assert not encoder_layers(model)
    head = model.get_layer("subspace_head")
    assert head.projection_kernel.shape[0] == CONFIG["channels"]


def test_invalid_cells_do_not_change_the_embedding(rng):
    config = ModelConfig(**CONFIG)
    model = embedding_model(build_autoencoder(config))
    inputs = random_inputs(rng, config)
    invalid = inputs["weights"] == 0
    garbage = dict(inputs, frames=np.where(invalid, 1e3, inputs["frames"]).astype("float32"))
    np.testing.assert_allclose(
        np.asarray(model.predict_on_batch(garbage)),
        np.asarray(model.predict_on_batch(inputs)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_convlstm_twin_differs_only_in_the_encoder(rng):
    fa = build_autoencoder(ModelConfig(**CONFIG))
    twin = build_autoencoder(ModelConfig(**CONFIG, cell="convlstm"))
    assert type(twin.get_layer("encoder_0")) is keras.layers.ConvLSTM2D
    assert type(fa.get_layer("encoder_0")).__name__ == "FAConvLSTM2D"
    rest = lambda model: [
        (layer.name, layer.count_params()) for layer in model.layers if layer.name != "encoder_0"
    ]
    assert rest(fa) == rest(twin)
    assert fa.get_layer("encoder_0").count_params() < twin.get_layer("encoder_0").count_params()


def test_layer_options_reach_the_fa_layers():
    model = build_autoencoder(ModelConfig(**CONFIG, layer_options={"attention_every": 0}))
    assert model.get_layer("encoder_0").attention_every == 0


def test_training_lowers_the_loss(rng):
    config = ModelConfig(**CONFIG)
    model = build_autoencoder(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    inputs = random_inputs(rng, config, batch=4)
    pattern = np.sin(np.arange(8))[:, None, None] + np.cos(np.arange(9))[None, :, None]
    inputs["frames"] = (pattern + 0.1 * inputs["frames"]).astype("float32")
    history = model.fit(inputs, epochs=25, batch_size=4, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]


@pytest.mark.parametrize("options", [
    {}, {"spatial_maps": 0, "decoder_patterns": False, "decoder_filters": 4, "input_skip": False},
], ids=["default", "pooled_head_convolutional_decoder"])
def test_save_and_load_give_identical_outputs(rng, tmp_path, options):
    config = ModelConfig(**CONFIG, **options)
    model = build_autoencoder(config)
    inputs = random_inputs(rng, config)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for name in ("embedding", "reconstruction"):
        np.testing.assert_allclose(
            np.asarray(loaded.predict_on_batch(inputs)[name]),
            np.asarray(model.predict_on_batch(inputs)[name]),
            rtol=1e-5,
            atol=1e-6,
        )


@pytest.mark.parametrize(
    ("precision", "compute_dtype"),
    [
        # On JAX: covered for the layer by tests/layers/test_mixed_precision.py.
        pytest.param("mixed_float16", "float16", marks=on_the_default_backend_only("CI time")),
        pytest.param("mixed_bfloat16", "bfloat16", marks=on_the_default_backend_only("CI time")),
    ],
)
def test_mixed_precision_runs_encoder_and_decoder_in_half_and_the_rest_in_float32(
    rng, tmp_path, precision, compute_dtype
):
    config = ModelConfig(**CONFIG, precision=precision)
    model = build_autoencoder(config)
    for name in ("encoder_0", "decoder"):
        assert model.get_layer(name).compute_dtype == compute_dtype
    for name in ("subspace_head", "temporal_attention", "embedding", "reconstruction"):
        assert model.get_layer(name).compute_dtype == "float32"
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    inputs = random_inputs(rng, config, batch=4)
    history = model.fit(inputs, epochs=3, batch_size=4, verbose=0).history["loss"]
    assert np.isfinite(history).all() and history[-1] < history[0]
    path = tmp_path / "mixed.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("encoder_0").compute_dtype == compute_dtype
    embedding = loaded.predict_on_batch(inputs)["embedding"]
    assert keras.backend.standardize_dtype(embedding.dtype) == "float32"
    np.testing.assert_allclose(
        embedding, model.predict_on_batch(inputs)["embedding"], rtol=1e-5, atol=1e-6
    )


def test_config_round_trips_through_a_dict():
    config = ModelConfig(**CONFIG, layer_options={"attention_every": 2})
    assert ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"grid": (3, 9)}, "too small"),
        ({"cell": "gru"}, "cell must be one of"),
        ({"window": 0}, "`window` must be a positive integer"),
        ({"filters": ()}, "filters must be one or more"),
        ({"filters": (4, 0)}, "`filters` must be a positive integer"),
        ({"global_halo": 8}, r"global_halo must be in \[0, 8\)"),
        ({"precision": "float8"}, "precision must be one of"),
        ({"decoder_patterns": False, "decoder_filters": 0}, "The decoder needs its patterns"),
        ({"spatial_maps": -1}, "`spatial_maps` must be"),
        ({"forecast_horizon": 6}, "forecast_horizon must be below the window"),
        ({"forecast_dynamics": "chaotic"}, "forecast_dynamics must be one of"),
        ({"encoder": False, "input_skip": False}, "needs the input frames"),
    ],
)
def test_bad_settings_raise_clear_errors(settings, message):
    with pytest.raises(InputError, match=message):
        ModelConfig(**{**CONFIG, **settings})


def test_unknown_settings_are_named():
    with pytest.raises(InputError, match=r"Unknown model settings \['color'\]"):
        ModelConfig.from_dict({**CONFIG, "color": "red"})


def test_global_padding_is_circular_in_longitude_and_reflected_in_latitude():
    frames = np.arange(4 * 5, dtype="float32").reshape(1, 1, 4, 5, 1)
    padded = np.asarray(pad_globally(keras.ops.convert_to_tensor(frames), 2))[0, 0, :, :, 0]
    grid = frames[0, 0, :, :, 0]
    assert padded.shape == (8, 9)
    np.testing.assert_array_equal(padded[2:-2, 2:-2], grid)
    np.testing.assert_array_equal(padded[2:-2, :2], grid[:, 3:])  # wraps round from the east
    np.testing.assert_array_equal(padded[2:-2, -2:], grid[:, :2])  # and from the west
    np.testing.assert_array_equal(padded[:2, 2:-2], grid[[2, 1]])  # mirrored about row 0
    np.testing.assert_array_equal(padded[-2:, 2:-2], grid[[2, 1]])  # mirrored about row 3


def test_a_global_halo_makes_embeddings_nearly_invariant_to_longitude_rolls(rng):
    """Pooled embeddings of a periodic grid should not care where longitude 0 is; zero
    padding makes them care, the circular halo much less (same weights in both models). The
    head's spatial maps (position-dependent by design) and the input skip (which bypasses
    the encoder) are left out."""
    settings = {**CONFIG, "grid": (8, 12), "layer_options": {"attention_every": 0},
                "spatial_maps": 0, "input_skip": False}
    plain = embedding_model(build_autoencoder(ModelConfig(**settings)))
    halo = embedding_model(build_autoencoder(ModelConfig(**settings, global_halo=4)))
    halo.set_weights(plain.get_weights())
    inputs = random_inputs(rng, ModelConfig(**settings))
    rolled = {**inputs,
              **{name: np.roll(inputs[name], 5, axis=3) for name in ("frames", "weights")}}

    def roll_error(model):
        return np.abs(model.predict_on_batch(rolled) - model.predict_on_batch(inputs)).mean()

    assert roll_error(halo) < 0.5 * roll_error(plain)


def test_an_encoder_narrower_than_half_the_embedding_still_builds(rng):
    config = ModelConfig(**{**CONFIG, "filters": (2,), "embedding_dim": 8})
    outputs = build_autoencoder(config)(random_inputs(rng, config))
    assert tuple(outputs["embedding"].shape) == (2, 6, 8)


def test_encoder_parameters_count_every_recurrent_layer():
    model = build_autoencoder(ModelConfig(**{**CONFIG, "filters": (6, 5)}))
    assert [layer.name for layer in encoder_layers(model)] == ["encoder_0", "encoder_1"]
    expected = sum(model.get_layer(f"encoder_{i}").count_params() for i in range(2))
    assert encoder_parameters(model) == expected > 0


@pytest.mark.parametrize("cell", ["fa", "convlstm"])
def test_the_training_memory_estimate_scales_with_the_windows_and_cells(cell):
    def variable(**changes):
        """The estimate less its fixed part (found by extrapolating to 0 windows)."""
        settings = {"channels": 3, "grid": (32, 48), "window": 8, "cell": cell,
                    "forecast_horizon": 2, **changes}
        batch_size = settings.pop("batch_size", 4)
        config = ModelConfig(**settings)
        one, two = (training_memory_bytes(config, batch_size=size) for size in (1, 2))
        return training_memory_bytes(config, batch_size=batch_size) - (2 * one - two)

    base = variable()
    assert base > 0
    assert variable(batch_size=8) == pytest.approx(2 * base, rel=1e-6)
    assert variable(window=16) == pytest.approx(2 * base, rel=1e-6)
    assert variable(grid=(64, 96)) == pytest.approx(4 * base, rel=1e-6)
    assert variable(precision="mixed_bfloat16") == pytest.approx(base / 2, rel=1e-6)
    # The gate values grow linearly with the filters (the bottleneck stays 8 up to 32
    # filters); inputs, decoder and loss do not, so doubling the filters less than doubles it.
    step = variable(filters=(24, 24)) - base
    assert step > 0
    assert variable(filters=(32, 32)) - base == pytest.approx(2 * step, rel=1e-6)
    assert variable(filters=(32, 32)) < 2 * base


def test_the_training_memory_estimate_uses_the_layers_own_bottleneck():
    settings = {"channels": 3, "grid": (32, 48), "window": 8, "filters": (64,)}
    default = FAConvLSTM2D(64, 3).bottleneck
    assert default != 8
    estimate = training_memory_bytes(ModelConfig(**settings), batch_size=4)
    same = ModelConfig(**settings, layer_options={"bottleneck": default})
    narrow = ModelConfig(**settings, layer_options={"bottleneck": 8})
    assert estimate == training_memory_bytes(same, batch_size=4)
    assert estimate > training_memory_bytes(narrow, batch_size=4)


def test_the_training_memory_estimate_of_a_global_grid_exceeds_a_workstation():
    era5 = ModelConfig(channels=6, grid=(721, 1440))
    assert training_memory_bytes(era5, batch_size=8) > 100 * 2**30
