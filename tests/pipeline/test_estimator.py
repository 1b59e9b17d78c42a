"""FAEmbedding: the pipeline on xarray objects, against the run-directory path it wraps."""

import numpy as np
import pytest
import xarray as xr

from faconvlstm.errors import InputError
from faconvlstm.pipeline import FAEmbedding, cluster, embed, fit
from tests.conftest import MODEL, SETTINGS, on_the_default_backend_only

pytestmark = on_the_default_backend_only("the estimator wraps the backend-independent pipeline")

VARIABLES = ["t2m", "sst"]
#: The estimator's settings equal to the shared test run's (tests/conftest.py).
ESTIMATOR = {
    "embedding_dim": MODEL["embedding_dim"], "window": MODEL["window"],
    "filters": MODEL["filters"], "epochs": SETTINGS.epochs,
    "validation_years": SETTINGS.validation_years, "progress": False,
    "training_options": {"batch_size": SETTINGS.batch_size,
                         "window_stride": SETTINGS.window_stride,
                         "min_epoch_steps": SETTINGS.min_epoch_steps},
}


@pytest.fixture(scope="module")
def dataset(synthetic_file):
    with xr.open_dataset(synthetic_file) as opened:
        return opened.load()


@pytest.fixture(scope="module")
def fitted(dataset):
    return FAEmbedding(**ESTIMATOR).fit(dataset, VARIABLES)


def test_fit_and_transform_match_the_run_directory_path(fitted, dataset, synthetic_file,
                                                        tmp_path):
    from faconvlstm.pipeline import DataSelection

    run = tmp_path / "run"
    fit(DataSelection(str(synthetic_file), VARIABLES), run, MODEL,
        fitted._training(), progress=False)
    from_files = embed(run, align="end")["embeddings"]

    embeddings = fitted.transform(dataset, align="end")

    assert embeddings.dims == ("time", "embedding")
    xr.testing.assert_identical(embeddings["time"], dataset["time"])
    # training sums in another order (dask chunks against memory): float32 round-off
    np.testing.assert_allclose(embeddings.values, from_files.values, rtol=1e-3, atol=1e-4)
    assert embeddings.attrs["alignment"] == "end"
    assert embeddings.attrs["title"] == dataset.attrs["title"]  # the source's attributes


def test_dask_backed_data_embed_as_in_memory_data(fitted, synthetic_file, dataset):
    with xr.open_dataset(synthetic_file, chunks={"time": 100}) as lazy:
        assert lazy["t2m"].chunks is not None
        streamed = fitted.transform(lazy)
    np.testing.assert_allclose(streamed.values, fitted.transform(dataset).values, rtol=1e-5,
                               atol=1e-6)


def test_inverse_transform_is_the_models_reconstruction_in_physical_units(fitted, dataset):
    run = fitted.fitted
    fields = fitted._selection().load(dataset)
    reconstruction = run.per_timestep(
        fields, lambda batch: {"r": run.autoencoder.predict_on_batch(batch)["reconstruction"]},
    )["r"]
    expected = run.preprocessor.inverse_transform(run.preprocess(fields).copy(data=reconstruction))

    decoded = fitted.inverse_transform(fitted.transform(dataset))

    assert decoded.dims == ("time", "lat", "lon", "channel")
    assert list(decoded["units"].values) == ["K", "K"]
    np.testing.assert_allclose(decoded.values, expected.values, rtol=1e-4, atol=1e-3)


def test_components_are_the_linear_decoders_patterns_in_physical_units(fitted, dataset):
    embeddings = fitted.transform(dataset).isel(time=slice(10, 14))
    zero = fitted.inverse_transform(xr.zeros_like(embeddings))
    components = fitted.components()

    expected = zero + xr.dot(embeddings, components, dim="embedding")

    assert components.dims == ("embedding", "lat", "lon", "channel")
    np.testing.assert_allclose(fitted.inverse_transform(embeddings).values,
                               expected.transpose(*zero.dims).values, rtol=1e-4, atol=1e-3)


def test_predict_gives_the_forecast_at_its_valid_time(fitted, dataset):
    run = fitted.fitted
    lead = 2
    fields = fitted._selection().load(dataset)
    forecast = run.per_timestep(
        fields, lambda batch: {"f": run.autoencoder.predict_on_batch(batch)["forecast"]},
        align="end",
    )["f"][:, lead - 1]

    predicted = fitted.predict(dataset, lead)

    np.testing.assert_array_equal(predicted["initial_time"].values, dataset["time"].values)
    np.testing.assert_array_equal(predicted["time"].values,
                                  dataset["time"].values + np.timedelta64(2, "D"))
    standardized = run.preprocessor.transform(predicted.assign_coords(
        units=("channel", ["K", "K"])))
    np.testing.assert_allclose(standardized.values, forecast, rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match=r"forecasts 1 to 4 steps ahead; got lead 5"):
        fitted.predict(dataset, 5)


def test_save_and_load_round_trip_everything(fitted, dataset, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = FAEmbedding.load(tmp_path / "model", progress=False)

    assert loaded.get_params() == {**fitted.get_params(), "filters": tuple(MODEL["filters"])}
    assert repr(loaded).split("; run in")[0] == repr(fitted).split("; run in")[0]
    xr.testing.assert_identical(loaded.transform(dataset), fitted.transform(dataset).assign_attrs(
        run_dir=str((tmp_path / "model").resolve())))
    xr.testing.assert_identical(loaded.components(), fitted.components())
    with pytest.raises(InputError, match="exists; save to a new path"):
        fitted.save(tmp_path / "model")
    with pytest.raises(InputError, match="holds no saved FAEmbedding"):
        FAEmbedding.load(tmp_path)


def test_a_saved_estimator_is_a_run_directory_the_cli_path_embeds(fitted, dataset, tmp_path):
    fitted.save(tmp_path / "model")

    from_run = embed(tmp_path / "model", source=dataset)

    np.testing.assert_allclose(from_run["embeddings"].values, fitted.transform(dataset).values,
                               rtol=1e-6)
    with pytest.raises(InputError, match="trained on xarray objects, not files"):
        embed(tmp_path / "model")


def test_cluster_takes_the_returned_data_array(fitted, dataset):
    embeddings = fitted.transform(dataset)

    labelled = cluster(embeddings, k=3, source=dataset)
    without_fields = cluster(embeddings, k=3)

    expected = cluster(embeddings.to_dataset(), k=3)
    np.testing.assert_array_equal(labelled.labels["label"], expected.labels["label"])
    assert labelled.composites["t2m_anomaly"].dims == ("cluster", "lat", "lon")
    assert without_fields.composites is None


def test_variables_default_to_those_on_the_time_lat_lon_axes(dataset):
    from faconvlstm.pipeline.estimator import _variables_on_the_grid

    assert _variables_on_the_grid(dataset, None, None) == ["t2m", "msl", "tp", "sst"]
    with pytest.raises(InputError, match="name the variables"):
        _variables_on_the_grid(dataset[["z"]], None, None)


def test_an_unfitted_estimator_says_so(dataset):
    estimator = FAEmbedding(embedding_dim=8)

    assert repr(estimator) == "FAEmbedding(embedding_dim=8), not fitted"
    with pytest.raises(InputError, match="not fitted; call fit"):
        estimator.transform(dataset)


def test_embeddings_of_another_shape_are_refused(fitted, dataset):
    with pytest.raises(InputError, match=r"dims \(time, embedding\)"):
        fitted.inverse_transform(dataset["t2m"])
    with pytest.raises(InputError, match="have 3 axes; this model's have 4"):
        fitted.inverse_transform(fitted.transform(dataset).isel(embedding=slice(0, 3)))


def test_causal_embeddings_a_stride_apart_see_nothing_after_their_timestep(fitted, dataset):
    full = fitted.transform(dataset, align="end", stride=4)
    cut = 400
    shorter = fitted.transform(dataset.isel(time=slice(0, cut)), align="end", stride=4)

    kept = cut - 2 * MODEL["window"]  # the last windows start where the data end
    np.testing.assert_allclose(shorter.values[:kept], full.values[:kept], rtol=1e-5, atol=1e-6)
    assert full.attrs["window_stride"] == 4
    assert fitted.transform(dataset, align="end").attrs["window_stride"] == MODEL["window"] // 2
    assert not np.allclose(full.values, fitted.transform(dataset, align="end", stride=1).values)
