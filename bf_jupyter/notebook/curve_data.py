"""The data behind the live curves: every value of every metric, progress, throughput and ETA.

Pure Python and numpy, no widgets: ``TrainingCurves`` is fed by the Keras callback or by metric
records, and renders what the widget sends (binary, downsampled, only what changed). Every value is
kept in an ``array('d')`` (8 bytes per value); the x position of a batch value is its batch number,
so it is stored only when a series skips batches.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bf_jupyter.notebook.downsample import DEFAULT_MAX_POINTS, PeakDownsampler

if TYPE_CHECKING:
    from bf_jupyter.gpumeter import GpuReading

__all__ = ["MetricSeries", "TrainingCurves", "series_key"]

BATCH, EPOCH = "batch", "epoch"
# Throughput is averaged over this many seconds of batches (an exponential moving average).
_RATE_HALF_LIFE = 5.0


def series_key(scope: str, metric: str) -> str:
    """``batch:loss``, ``epoch:val_accuracy``: how a series is named in the widget state."""
    return f"{scope}:{metric}"


class MetricSeries:
    """Every value of one metric, in order, with its x position (the batch count when it was seen)."""

    __slots__ = (
        "_downsampler",
        "_max_points",
        "_max_stored",
        "_next_x",
        "_seen",
        "_x",
        "_x0",
        "_y",
    )

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS, max_stored: int | None = None) -> None:
        if max_stored is not None and max_stored < 8:
            raise ValueError(f"max_stored {max_stored} is too small: use 8 or more")
        self._y = array("d")
        self._x: array[float] | None = None  # only when x is not x0, x0 + 1, x0 + 2, ...
        self._x0 = 0.0
        self._next_x: float = math.nan  # the x that keeps the series dense (NaN: never)
        self._max_points = max_points
        self._max_stored = max_stored  # None: every value is kept exactly (epoch series)
        self._seen = 0  # values appended, stored or not
        self._downsampler = PeakDownsampler(max_points)

    def __len__(self) -> int:
        """Values stored (at most about ``max_stored``)."""
        return len(self._y)

    @property
    def seen(self) -> int:
        """Values appended over the series' life."""
        return self._seen

    def append(self, x: float, y: float) -> None:
        self._seen += 1
        if x == self._next_x:  # the hot path: the next batch of a dense series
            self._y.append(y)
            self._next_x = x + 1
        else:
            if not self._y and self._x is None:
                self._x0, self._next_x = x, x + 1
            else:
                if self._x is None:
                    self._x = array("d", (self._x0 + i for i in range(len(self._y))))
                    self._next_x = math.nan
                self._x.append(x)
            self._y.append(y)
        if self._max_stored is not None and len(self._y) > self._max_stored:
            self._compact()

    def _compact(self) -> None:
        """Halve what is stored: each run of 4 values becomes its minimum and its maximum, in
        order, so every spike the curve shows survives; the newest values stay as they are."""
        y = self.values()
        x = self.positions()
        whole = len(y) - len(y) % 4
        runs = y[:whole].reshape(-1, 4)
        with np.errstate(invalid="ignore"):
            lo, hi = (
                np.nanargmin(_no_all_nan(runs), axis=1),
                np.nanargmax(_no_all_nan(runs), axis=1),
            )
        first, second = np.minimum(lo, hi), np.maximum(lo, hi)
        second = np.where(first == second, 3, second)
        first = np.where(first == second, 0, first)
        rows = np.arange(len(runs)) * 4
        kept = np.stack([rows + first, rows + second], axis=1).ravel()
        kept = np.concatenate([kept, np.arange(whole, len(y))])
        self._y = array("d", y[kept].tobytes())
        self._x = array("d", x[kept].tobytes())
        self._next_x = math.nan
        self._downsampler = PeakDownsampler(self._max_points)  # its buckets indexed the old values

    def positions(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The x of every stored value."""
        if self._x is None:
            return np.arange(len(self._y), dtype=np.float64) + self._x0
        return np.frombuffer(self._x, dtype=np.float64) if self._x else np.empty(0)

    def values(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Every value (a view; do not keep it across appends)."""
        return np.frombuffer(self._y, dtype=np.float64) if self._y else np.empty(0)

    def nbytes(self) -> int:
        return self._y.itemsize * len(self._y) + (0 if self._x is None else 8 * len(self._x))

    def payload(self) -> dict[str, Any]:
        """The downsampled curve for the browser: x as little-endian float64 bytes, y as float32."""
        at, y = self._downsampler.view(self.values())
        if self._x is None:
            x = at.astype("<f8") + self._x0
        else:
            x = np.frombuffer(self._x, dtype=np.float64)[at].astype("<f8")
        return {
            "count": self._seen,
            "points": len(at),
            "x": x.tobytes(),
            "y": y.astype("<f4").tobytes(),
        }


@dataclass
class _Progress:
    epochs: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    epoch: int = 0  # 0-based, like Keras
    step: int | None = None  # index of the last batch done within the epoch
    batches: int = 0  # batches seen over the whole run
    started: float | None = None
    last_time: float | None = None
    rate: float | None = None  # batches per second, smoothed
    rate_mark: tuple[float, int] | None = None
    gpu_used_mib: float | None = None
    gpu_total_mib: float | None = None
    gpu_metered: bool = False  # the kernel's GPU meter was asked (then None below: no reading)
    gpu_utilization: int | None = None
    gpu_over_share: bool = False


def _no_all_nan(
    runs: np.ndarray[Any, np.dtype[np.float64]],
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``runs`` with rows that are all NaN made 0-able for nanargmin (their gap stays: the
    values picked are still NaN, read back by index from the original)."""
    empty = np.isnan(runs).all(axis=1)
    if not empty.any():
        return runs
    fixed = runs.copy()
    fixed[empty] = 0.0
    return fixed


# Metric records come from a process's output: whatever it prints must not grow the kernel's
# memory without bound. Series beyond MAX_SERIES are ignored; a batch series keeps at most about
# MAX_STORED values (then halves them, keeping peaks); epoch values are always kept exactly.
MAX_SERIES = 64
MAX_STORED = 200_000


class TrainingCurves:
    """Curves and progress of training runs (a second ``begin`` continues the same curves)."""

    def __init__(
        self,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
        max_series: int = MAX_SERIES,
        max_stored: int = MAX_STORED,
    ) -> None:
        self.max_points = max_points
        self.max_series = max_series
        self.max_stored = max_stored
        self.ignored_values = 0  # values of new metrics refused once max_series was reached
        self.series: dict[str, MetricSeries] = {}
        self._batch_series: dict[str, MetricSeries] = {}  # by metric name, for the hot path
        self._batches_changed = False
        self._progress = _Progress()
        self._changed: set[str] = set()
        self._cached: dict[str, dict[str, Any]] = {}

    # ----- feeding -------------------------------------------------------------------------------

    def begin(
        self, *, epochs: int | None, steps: int | None, batch_size: int | None, time: float
    ) -> None:
        progress = self._progress
        progress.epochs, progress.steps, progress.batch_size = epochs, steps, batch_size
        progress.step = None
        progress.started = progress.last_time = time
        progress.rate_mark = (time, progress.batches)

    def add_batch(self, epoch: int, step: int, metrics: Mapping[str, float], time: float) -> None:
        """One batch's values (the hot path: a dict lookup and an array append per metric)."""
        progress = self._progress
        x = progress.batches
        batch_series = self._batch_series
        for name, value in metrics.items():
            series = batch_series.get(name)
            if series is None:
                series = self._new_series(BATCH, name)
                if series is None:
                    continue
                batch_series[name] = series
            series.append(x, value)
        self._batches_changed = True
        progress.batches = x + 1
        progress.epoch = epoch
        progress.step = step
        progress.last_time = time

    def _new_series(self, scope: str, name: str) -> MetricSeries | None:
        """A new series, or None once ``max_series`` exist (its values are ignored)."""
        if len(self.series) >= self.max_series:
            self.ignored_values += 1
            return None
        stored = self.max_stored if scope == BATCH else None  # epoch values stay exact
        series = self.series[series_key(scope, name)] = MetricSeries(self.max_points, stored)
        return series

    def add_batches(
        self, epoch: int, last_step: int, metrics: Mapping[str, Sequence[float]], time: float
    ) -> None:
        """Several batches at once (a metric record): one entry per batch in each sequence."""
        count = max((len(v) for v in metrics.values()), default=0)
        for i in range(count):
            self.add_batch(
                epoch,
                last_step - count + 1 + i,
                {name: values[i] for name, values in metrics.items() if i < len(values)},
                time,
            )
        self._update_rate(time)

    def add_epoch(self, epoch: int, metrics: Mapping[str, float], time: float) -> None:
        x = self._progress.batches
        for name, value in metrics.items():
            key = series_key(EPOCH, name)
            series = self.series.get(key)
            if series is None:
                series = self._new_series(EPOCH, name)
                if series is None:
                    continue
            series.append(x, value)
            self._changed.add(key)
        self._progress.epoch = epoch
        self._progress.last_time = time
        self._update_rate(time)

    def set_gpu_memory(self, used_mib: float | None, total_mib: float | None) -> None:
        self._progress.gpu_used_mib = used_mib
        if total_mib is not None:
            self._progress.gpu_total_mib = total_mib

    def set_gpu_reading(self, reading: GpuReading | None) -> None:
        """The kernel's GPU meter: utilisation and "over its share" (memory comes through
        ``set_gpu_memory``); None says "no GPU reading"."""
        self._progress.gpu_metered = True
        self._progress.gpu_utilization = None if reading is None else reading.utilization_percent
        self._progress.gpu_over_share = reading is not None and reading.over_share

    # ----- rendering -----------------------------------------------------------------------------

    def _update_rate(self, time: float) -> None:
        """Smooth batches/s between calls (made at most every send interval, not per batch)."""
        progress = self._progress
        if progress.rate_mark is None:
            progress.rate_mark = (time, progress.batches)
            return
        then, batches = progress.rate_mark
        elapsed = time - then
        if elapsed <= 0 or progress.batches == batches:
            return
        rate = (progress.batches - batches) / elapsed
        weight = 1 - 0.5 ** (elapsed / _RATE_HALF_LIFE)
        progress.rate = (
            rate if progress.rate is None else progress.rate + weight * (rate - progress.rate)
        )
        progress.rate_mark = (time, progress.batches)

    def progress(self, time: float | None = None) -> dict[str, Any]:
        """Progress for people: epoch and step (1-based), samples/s, ETA, GPU memory, elapsed."""
        p = self._progress
        if time is not None:
            self._update_rate(time)
        batches_per_s = p.rate
        samples_per_s = batches_per_s * p.batch_size if batches_per_s and p.batch_size else None
        return {
            "epoch": p.epoch + 1 if p.batches or p.started is not None else 0,
            "epochs": p.epochs,
            "step": None if p.step is None else p.step + 1,
            "steps": p.steps,
            "batches": p.batches,
            "batch_size": p.batch_size,
            "batches_per_second": _rounded(batches_per_s),
            "samples_per_second": _rounded(samples_per_s),
            "eta_seconds": _rounded(self._eta(batches_per_s)),
            "elapsed_seconds": _rounded(
                None if p.started is None or p.last_time is None else p.last_time - p.started
            ),
            "gpu_memory_used_mib": _rounded(p.gpu_used_mib),
            "gpu_memory_total_mib": _rounded(p.gpu_total_mib),
            "gpu_utilization_percent": p.gpu_utilization,
            "gpu_over_share": p.gpu_over_share,
            "gpu_reading": (
                None
                if not p.gpu_metered
                else p.gpu_used_mib is not None or p.gpu_utilization is not None
            ),
        }

    def _eta(self, batches_per_s: float | None) -> float | None:
        p = self._progress
        if not batches_per_s or p.steps is None or p.epochs is None:
            return None
        done_in_epoch = 0 if p.step is None else p.step + 1
        remaining = (p.epochs - p.epoch - 1) * p.steps + (p.steps - done_in_epoch)
        return max(0.0, remaining / batches_per_s)

    def has_changes(self) -> bool:
        return self._batches_changed or bool(self._changed)

    def payload(self) -> dict[str, dict[str, Any]]:
        """Every series, downsampled; only the ones that changed since the last call are recomputed
        (the others reuse their bytes)."""
        if self._batches_changed:
            self._changed.update(series_key(BATCH, name) for name in self._batch_series)
            self._batches_changed = False
        for key in self._changed:
            self._cached[key] = {"key": key, **self.series[key].payload()}
        self._changed.clear()
        return dict(self._cached)

    def nbytes(self) -> int:
        """Memory held by the values themselves (what grows with training)."""
        return sum(series.nbytes() for series in self.series.values())


def _rounded(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 3)
