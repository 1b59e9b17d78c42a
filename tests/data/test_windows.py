"""Sliding windows: coverage, gaps, centring, and the batches they serve."""

import time

import numpy as np
import pytest
import xarray as xr

from faconvlstm.data import windows
from faconvlstm.data.calendar import year_fraction
from faconvlstm.data.windows import WindowDataset, embedding_windows, training_starts
from faconvlstm.errors import InputError


def daily_time(days: int, drop: slice | None = None) -> xr.DataArray:
    time = xr.date_range("2001-01-01", periods=days, freq="D", calendar="noleap", use_cftime=True)
    index = np.arange(days)
    if drop is not None:
        index = np.delete(index, np.arange(days)[drop])
    return xr.DataArray(time[index], dims="time")


def test_embedding_windows_embed_every_timestep_once_nearest_the_center():
    time = daily_time(40)
    starts, step_window, step_offset = embedding_windows(time, window=8, stride=1)
    absolute = starts[step_window] + step_offset
    np.testing.assert_array_equal(absolute, np.arange(40))
    interior = slice(4, 36)
    np.testing.assert_array_equal(step_offset[interior], 4)
    assert starts.min() == 0 and starts.max() == 32


def test_end_windows_end_at_each_timestep_or_hold_all_its_history():
    time = daily_time(40, drop=slice(20, 22))  # runs of 20 and 18 steps
    starts, step_window, step_offset = embedding_windows(time, window=8, align="end", stride=1)
    absolute = starts[step_window] + step_offset
    np.testing.assert_array_equal(absolute, np.arange(38))
    for run in (slice(0, 20), slice(20, 38)):
        first = run.start
        np.testing.assert_array_equal(starts[step_window[run]][7:], np.arange(first, run.stop - 7))
        np.testing.assert_array_equal(starts[step_window[run]][:7], first)  # no full window yet
    with pytest.raises(InputError, match=r"align must be one of \('center', 'end'\); got 'start'"):
        embedding_windows(time, 8, align="start")


@pytest.mark.parametrize("align", ["center", "end"])
def test_windows_a_stride_apart_cover_every_timestep_from_few_windows(align):
    time = daily_time(100, drop=slice(60, 62))  # runs of 60 and 38 steps
    starts, step_window, step_offset = embedding_windows(time, 16, align, stride=8)

    np.testing.assert_array_equal(starts[step_window] + step_offset, np.arange(98))
    # 0, 8, .., 40 and the run's last start 44; 60, 68, 76 and 82: against 68 at stride 1
    np.testing.assert_array_equal(starts, [0, 8, 16, 24, 32, 40, 44, 60, 68, 76, 82])
    runs = [slice(16, 60), slice(76, 98)]  # past the first window of each run
    for run in runs:
        offsets = step_offset[run]
        if align == "center":  # within half the stride of the centre, or all of the run's end
            assert (np.abs(offsets - 8) <= 4).sum() >= offsets.size - 8
        else:  # at least window - stride steps of history in the window
            assert (offsets >= 8).all()
    for stride in range(1, 17):  # every stride up to the window covers every step once
        starts, step_window, step_offset = embedding_windows(time, 16, align, stride)
        np.testing.assert_array_equal(starts[step_window] + step_offset, np.arange(98))
        assert ((step_offset >= 0) & (step_offset < 16)).all()
    with pytest.raises(InputError, match=r"stride must be an integer from 1 to the window \(16\)"):
        embedding_windows(time, 16, align, stride=17)


@pytest.mark.parametrize("window", [1, 7, 16])
def test_windows_are_half_a_window_apart_by_default(window):
    time = daily_time(60)
    default = embedding_windows(time, window)
    explicit = embedding_windows(time, window, stride=max(1, window // 2))
    for got, want in zip(default, explicit):
        np.testing.assert_array_equal(got, want)


def test_no_window_spans_a_gap_and_short_runs_get_no_embedding():
    time = daily_time(40, drop=slice(20, 25))  # runs of 20 and 15 steps
    starts, step_window, _ = embedding_windows(time, window=16)
    covered = step_window >= 0
    assert covered[:20].all() and not covered[20:].any()
    assert (starts + 16 <= 20).all()
    for start in training_starts(time, window=8):
        assert start + 8 <= 20 or start >= 20


def test_training_starts_follow_the_stride_within_each_run():
    time = daily_time(30, drop=slice(10, 12))  # runs [0, 10) and [10, 28)
    np.testing.assert_array_equal(training_starts(time, 5, stride=3), [0, 3, 10, 13, 16, 19, 22])


def test_training_starts_name_the_problem_when_no_window_fits():
    with pytest.raises(InputError, match="No window of 16 timesteps fits.*longest gap-free run has 10"):
        training_starts(daily_time(10), 16)


def make_fields(rng, days: int = 12) -> xr.DataArray:
    values = rng.normal(size=(days, 3, 4, 2)).astype("float32")
    values[:, 0, 0, 1] = np.nan
    return xr.DataArray(
        values,
        dims=("time", "lat", "lon", "channel"),
        coords={"time": daily_time(days), "lat": [-60.0, 0.0, 60.0], "lon": np.arange(4.0),
                "channel": ["a", "b"]},
    )


def test_batches_fill_invalid_cells_and_weight_them_zero(rng):
    fields = make_fields(rng)
    batch = WindowDataset(fields, window=5, starts=np.array([0, 3, 7]), batch_size=2)[0]
    assert batch["frames"].shape == (2, 5, 3, 4, 2)
    assert batch["weights"].shape == (2, 5, 3, 4, 2)
    np.testing.assert_array_equal(batch["frames"][:, :, 0, 0, 1], 0.0)
    np.testing.assert_array_equal(batch["weights"][:, :, 0, 0, 1], 0.0)
    np.testing.assert_allclose(batch["weights"][0, 0, :, 1, 0], [0.5, 1.0, 0.5], atol=1e-6)
    np.testing.assert_array_equal(batch["frames"][1], np.nan_to_num(fields.values[3:8]))
    np.testing.assert_allclose(batch["year_fraction"][1], year_fraction(fields["time"])[3:8])


def test_shuffled_order_depends_only_on_seed_and_epoch(rng):
    fields = make_fields(rng, days=30)
    starts = np.arange(20)
    first = WindowDataset(fields, 4, starts, batch_size=20, shuffle=True, seed=3)
    first.on_epoch_end()
    resumed = WindowDataset(fields, 4, starts, batch_size=20, shuffle=True, seed=3, epoch=1)
    np.testing.assert_array_equal(first.order, resumed.order)
    assert sorted(first.order) == list(range(20))
    assert not np.array_equal(first.order, WindowDataset(fields, 4, starts, 20, True, 3).order)


def test_shards_split_every_batch_into_equal_consecutive_parts(rng):
    fields = make_fields(rng, days=30)
    starts = np.arange(14)
    settings = {"batch_size": 4, "shuffle": True, "seed": 5, "drop_remainder": True}
    whole = WindowDataset(fields, 4, starts, **settings)
    parts = [WindowDataset(fields, 4, starts, shard=(index, 2), **settings) for index in (0, 1)]
    assert len(whole) == len(parts[0]) == len(parts[1]) == 3
    for index in range(len(whole)):
        joined = np.concatenate([part[index]["frames"] for part in parts])
        np.testing.assert_array_equal(joined, whole[index]["frames"])
    with pytest.raises(InputError, match="cannot be served in 3 equal parts"):
        WindowDataset(fields, 4, starts, shard=(0, 3), **settings)


class RecordedReads(WindowDataset):
    """A window dataset that records which batches were read, in order."""

    def __init__(self, *args, **kwargs):
        self.reads: list[int] = []
        super().__init__(*args, **kwargs)

    def __getitem__(self, index: int):
        self.reads.append(index)
        return super().__getitem__(index)


def test_streamed_batches_are_read_ahead_in_order_with_a_bounded_queue(rng, monkeypatch):
    monkeypatch.setattr(windows, "IN_MEMORY_BYTES", 0)
    fields = make_fields(rng, days=40)
    streamed = RecordedReads(fields, 4, np.arange(36), batch_size=2)
    assert (streamed.workers, streamed.max_queue_size) == (
        windows.PREFETCH_THREADS, windows.PREFETCH_BATCHES
    )  # what Keras' fit and predict read ahead with
    batches = streamed.batches()
    first = next(batches)
    ahead = list(range(windows.PREFETCH_BATCHES + 1))  # the one served and the queue behind it
    deadline = time.monotonic() + 10
    while len(streamed.reads) < len(ahead) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # time to read further, were the queue unbounded
    assert streamed.reads == ahead
    served = [first, *batches]
    assert len(served) == len(streamed) == 18
    for index, batch in enumerate(served):
        np.testing.assert_array_equal(batch["frames"], streamed[index]["frames"])


def test_fields_in_memory_are_read_in_the_caller_s_thread(rng):
    in_memory = RecordedReads(make_fields(rng, days=40), 4, np.arange(36), batch_size=2)
    assert in_memory.workers == 1  # Keras then reads in its own loop, without threads
    batches = in_memory.batches()
    next(batches)
    assert in_memory.reads == [0]
