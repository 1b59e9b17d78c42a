"""Sliding windows of T timesteps, served lazily as a Keras ``PyDataset``.

Windows never cross a gap in time (a missing day, or the jump between two winters of a
season subset): they are drawn inside the runs :func:`~faconvlstm.data.calendar.contiguous_segments`
finds. For embedding, every timestep takes its embedding from the window in which it sits
nearest the center, or from the window that ends at it (causal), so a day's embedding does
not depend on where a window happened to start.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import xarray as xr

from faconvlstm.data.calendar import contiguous_segments, year_fraction
from faconvlstm.data.preprocessing import area_weights
from faconvlstm.errors import InputError

#: Fields smaller than this are loaded into memory once; larger ones are read window by window.
IN_MEMORY_BYTES = 1 << 30
#: Batches of streamed fields read ahead in background threads (a bounded queue), and the
#: threads reading them, so that reading overlaps the training step.
PREFETCH_BATCHES = 4
PREFETCH_THREADS = 2


def training_starts(time: xr.DataArray, window: int, stride: int = 1) -> np.ndarray:
    """Start indices of every window of ``window`` steps inside a gap-free run, ``stride`` apart."""
    starts = [
        np.arange(segment.start, segment.stop - window + 1, stride)
        for segment in contiguous_segments(time)
    ]
    starts = np.concatenate(starts) if starts else np.array([], dtype=int)
    if starts.size == 0:
        longest = max(segment.stop - segment.start for segment in contiguous_segments(time))
        raise InputError(
            f"No window of {window} timesteps fits in the data: its longest gap-free run has "
            f"{longest} steps; use a shorter window or more data."
        )
    return starts.astype(int)


#: Where in its window each timestep is embedded: nearest the center (``"center"``: history
#: and the steps after it, for regimes) or at the end (``"end"``: causal, nothing after it).
ALIGNMENTS = ("center", "end")


def embedding_windows(
    time: xr.DataArray, window: int, align: str = "center", stride: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which window embeds each timestep: ``(starts, step_window, step_offset)``.

    ``starts`` are the distinct window starts needed; timestep ``j`` takes position
    ``step_offset[j]`` of window ``step_window[j]`` (an index into ``starts``). Windows start
    every ``stride`` steps of a gap-free run (and at its last possible start); with
    ``stride=1`` every timestep has a window of its own: with ``align="center"`` the window in
    which it is nearest the center, with ``"end"`` the window that ends at it (the first
    ``window - 1`` steps of a gap-free run, which no full window ends at, take the run's first
    window, which holds all the history they have). A larger ``stride`` computes ``stride``
    times fewer windows: each timestep takes, of the windows computed, the one where it sits
    nearest the center (``"center"``), or the one where it sits latest, so that it has at
    least ``window - stride`` steps of history in it (``"end"``; the model is causal, so
    nothing after the timestep is seen at any position). Steps in a gap-free run shorter than
    ``window`` get ``step_window = -1`` (no embedding). Every other timestep is covered
    exactly once. By default ``stride`` is half the window (:func:`embedding_stride`).
    """
    if align not in ALIGNMENTS:
        raise InputError(f"align must be one of {ALIGNMENTS}; got {align!r}.")
    stride = embedding_stride(stride, window)
    back = window // 2 if align == "center" else window - 1
    steps = int(time.size)
    step_start = np.full(steps, -1)
    for segment in contiguous_segments(time):
        if segment.stop - segment.start < window:
            continue
        last = segment.stop - window
        candidates = np.unique(np.append(np.arange(segment.start, last + 1, stride), last))
        index = np.arange(segment.start, segment.stop)
        wanted = np.clip(index - back, segment.start, last)
        after = np.searchsorted(candidates, wanted).clip(max=candidates.size - 1)
        if align == "center":  # the computed start nearest the wanted one whose window
            before = (after - 1).clip(min=0)  # holds the timestep (ties: the earlier)
            closer = np.abs(candidates[before] - wanted) <= np.abs(candidates[after] - wanted)
            before_holds = candidates[before] > index - window
            after = np.where((closer & before_holds) | (candidates[after] > index), before,
                             after)
        # "end": the earliest computed start at or after the wanted one, the latest position
        step_start[index] = candidates[after]
    starts = np.unique(step_start[step_start >= 0])
    step_window = np.full(steps, -1)
    covered = step_start >= 0
    step_window[covered] = np.searchsorted(starts, step_start[covered])
    step_offset = np.where(covered, np.arange(steps) - step_start, -1)
    return starts, step_window, step_offset


def embedding_stride(stride: int | None, window: int) -> int:
    """The steps between embedding windows: ``stride``, by default (None) half the window,
    which embeds 5.4-5.8x faster than a window per timestep with the same skill (measured:
    docs/RESULTS.md, "Embedding with windows a stride apart")."""
    if stride is None:
        return max(1, window // 2)
    if not (isinstance(stride, (int, np.integer)) and 1 <= stride <= window):
        raise InputError(
            f"The embedding stride must be an integer from 1 to the window ({window}); got "
            f"{stride!r}."
        )
    return int(stride)


class WindowDataset(keras.utils.PyDataset):
    """Batches of model inputs from preprocessed fields ``(time, lat, lon, channel)``.

    Each item is ``{"frames", "weights", "year_fraction"}`` for ``batch_size`` windows: NaN
    cells become 0 in ``frames`` and weight 0 in ``weights`` (cos latitude elsewhere). With
    ``shuffle`` the window order is redrawn each epoch from ``(seed, epoch)``; with
    ``drop_remainder`` a last, incomplete batch is left out (data parallelism splits every
    batch evenly across devices). ``shard=(index, count)`` serves only part ``index`` of
    ``count`` equal parts of every batch (one process's share under multi-process data
    parallelism; needs ``drop_remainder``). With ``min_batches`` an epoch makes as many passes
    over the windows (each in its own order) as it takes to serve at least that many batches,
    so short data still give an epoch enough optimizer steps. Fields
    under :data:`IN_MEMORY_BYTES` are loaded once; larger (dask-backed) ones are read window
    by window, so a file larger than memory streams, and Keras' ``fit``/``predict`` then read
    up to :data:`PREFETCH_BATCHES` batches ahead in :data:`PREFETCH_THREADS` threads (the
    ``workers`` and ``max_queue_size`` of ``keras.utils.PyDataset``, which ``kwargs`` may set).
    """

    def __init__(
        self,
        fields: xr.DataArray,
        window: int,
        starts: np.ndarray,
        batch_size: int = 8,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        drop_remainder: bool = False,
        shard: tuple[int, int] = (0, 1),
        min_batches: int = 0,
        **kwargs,
    ):
        self.streams = fields.nbytes > IN_MEMORY_BYTES
        if self.streams:
            kwargs = {"workers": PREFETCH_THREADS, "max_queue_size": PREFETCH_BATCHES, **kwargs}
        super().__init__(**kwargs)
        if shard[1] > 1 and (not drop_remainder or batch_size % shard[1]):
            raise InputError(
                f"A batch of {batch_size} windows cannot be served in {shard[1]} equal parts; "
                "sharding needs drop_remainder and a batch size that is a multiple of the parts."
            )
        self.fields = fields if self.streams else fields.load()
        self.window = window
        self.starts = np.asarray(starts, dtype=int)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        self.drop_remainder = drop_remainder
        self.shard = shard
        self.passes = 1
        self.passes = max(1, math.ceil(min_batches / max(len(self), 1)))
        self.cell_area = area_weights(fields["lat"].values)[:, None, None].astype("float32")
        self.year_fraction = year_fraction(fields["time"])
        self.order = self._epoch_order()

    def __len__(self) -> int:
        windows = self.passes * self.starts.size
        if self.drop_remainder:
            return windows // self.batch_size
        return math.ceil(windows / self.batch_size)

    def _epoch_order(self) -> np.ndarray:
        """Window order of the current epoch: a function of ``(seed, epoch)`` only, so a
        resumed run sees the same batches as an uninterrupted one."""
        if not self.shuffle:
            return np.tile(np.arange(self.starts.size), self.passes)
        seeds = [(self.seed, self.epoch)]
        seeds += [(self.seed, self.epoch, later) for later in range(1, self.passes)]
        return np.concatenate(
            [np.random.default_rng(seed).permutation(self.starts.size) for seed in seeds]
        )

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self._epoch_order()

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        part = self.batch_size // self.shard[1]
        first = index * self.batch_size + self.shard[0] * part
        chosen = self.starts[self.order[first : first + part]]
        values = self._read(chosen)
        valid = np.isfinite(values)
        return {
            "frames": np.where(valid, values, 0.0).astype("float32"),
            "weights": (valid * self.cell_area).astype("float32"),
            "year_fraction": self.year_fraction[chosen[:, None] + np.arange(self.window)],
        }

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        """Every batch in order; streamed fields are read up to :attr:`max_queue_size`
        batches ahead in a background thread (for loops outside Keras' ``fit``)."""
        depth = self.max_queue_size if self.streams else 0
        if not depth:
            yield from (self[index] for index in range(len(self)))
            return
        with ThreadPoolExecutor(1) as pool:
            pending = deque(pool.submit(self.__getitem__, i) for i in range(min(depth, len(self))))
            for index in range(len(self)):
                batch = pending.popleft().result()
                if index + depth < len(self):
                    pending.append(pool.submit(self.__getitem__, index + depth))
                yield batch

    def _read(self, starts: np.ndarray) -> np.ndarray:
        """The float32 values of the windows at ``starts``: ``(B, window, lat, lon, channel)``.

        Windows that overlap or nearly touch (as in embedding, one per timestep) are read as
        one span of time: one read per batch instead of one per window.
        """
        first, stop = int(starts.min()), int(starts.max()) + self.window
        if stop - first <= 2 * self.window * len(starts):
            span = self._steps(first, stop)
            return np.stack([span[start - first : start - first + self.window] for start in starts])
        return np.stack([self._steps(start, start + self.window) for start in starts])

    def _steps(self, start: int, stop: int) -> np.ndarray:
        """Timesteps ``start:stop`` of the fields, float32 ``(stop - start, lat, lon, channel)``."""
        return np.asarray(self.fields.isel(time=slice(start, stop)).values, dtype="float32")
