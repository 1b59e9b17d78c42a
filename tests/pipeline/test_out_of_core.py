"""Training and embedding stream a Zarr store larger than the memory cap, window by window."""

import threading
import tracemalloc

import numpy as np
import pytest

from faconvlstm.data import windows
from faconvlstm.data.preprocessing import make_preprocessor
from faconvlstm.data.synthetic import make_synthetic_dataset
from faconvlstm.data.windows import WindowDataset, embedding_windows, training_starts
from faconvlstm.pipeline import DataSelection, TrainingSettings, embed, fit
from tests.conftest import on_the_default_backend_only

MODEL = {"filters": [4], "embedding_dim": 4, "window": 8}
#: Traced reading of a 72 MB store: ``make test`` runs these beside the rest of the suite.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def zarr_store(tmp_path_factory):
    """Eight years of t2m and z (two levels) on a 32x64 grid (72 MB), in chunks of 32 days.

    A long series on a small grid: the data outweigh a batch of windows many times over.
    """
    path = tmp_path_factory.mktemp("zarr") / "fields.zarr"
    dataset = make_synthetic_dataset(years=8, nlat=32, nlon=64)[["t2m", "z"]]
    dataset.chunk({"time": 32}).to_zarr(path)
    return DataSelection(str(path), ["t2m", "z@500"]), dataset["t2m"].nbytes + dataset["z"].nbytes


@on_the_default_backend_only("no Keras computation; traced reading takes half a minute")
def test_reading_for_training_and_embedding_streams_the_store(zarr_store, monkeypatch):
    """With the in-memory cap at a third of the data, everything training and embedding read
    (the checks, the preprocessing fit, every shuffled training batch and every embedding
    batch) streams: it never holds more than 60% of the data in host arrays (traced: NumPy
    buffers, Zarr chunks, dask intermediates), where loading the whole store would hold all
    of it (the streaming peak is about 12 MiB of the 68 MiB: a margin of 3.5x)."""
    selection, data_bytes = zarr_store
    cap = data_bytes // 3
    monkeypatch.setattr(windows, "IN_MEMORY_BYTES", cap)
    tracemalloc.start()
    try:
        fields = make_preprocessor([], False, False).fit_transform(selection.load())
        training = WindowDataset(fields, 8, training_starts(fields["time"], 8, 4), 8,
                                 shuffle=True)
        embedding = WindowDataset(fields, 8, embedding_windows(fields["time"], 8)[0], 16)
        for dataset in (training, embedding):
            for index in range(len(dataset)):
                assert np.isfinite(dataset[index]["frames"]).all()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fields.chunks is not None  # still lazy: read window by window
    bound = 0.6 * data_bytes
    assert peak < bound, f"peak {peak / 2**20:.1f} MiB against a bound of {bound / 2**20:.1f} MiB"


@on_the_default_backend_only("the loader is backend-independent; training on JAX is tested elsewhere")
def test_train_and_embed_run_from_the_store_under_the_cap(zarr_store, tmp_path, monkeypatch):
    """... with the streamed batches read ahead in background threads, in training (Keras'
    ``fit``) and in embedding."""
    selection, data_bytes = zarr_store
    monkeypatch.setattr(windows, "IN_MEMORY_BYTES", data_bytes // 3)
    reading_threads = []
    read = WindowDataset.__getitem__

    def recorded_read(self, index):
        if self.streams:  # smaller parts (the validation year) are loaded, and read in line
            reading_threads.append(threading.current_thread() is threading.main_thread())
        return read(self, index)

    monkeypatch.setattr(WindowDataset, "__getitem__", recorded_read)
    run = fit(selection, tmp_path / "run", MODEL,
              TrainingSettings(epochs=1, window_stride=64, validation_years=1), progress=False)
    embeddings = embed(run.run_dir, time=["2007-01-01", "2007-03-31"])["embeddings"]
    assert embeddings.shape == (90, 4) and np.isfinite(embeddings.values).all()
    assert reading_threads and not any(reading_threads)
