"""Peak-preserving downsampling of a growing curve, maintained incrementally.

A curve of a million batches cannot be sent to the browser ten times a second, but the spikes in it
are what a person looks for. ``PeakDownsampler`` keeps the curve as buckets of ``width`` consecutive
values (a power of two) and shows each bucket as its minimum and its maximum, in order: every local
extreme at the bucket scale survives, the global minimum and maximum always do. When the buckets
outgrow the point budget, adjacent pairs merge (the width doubles). Each view costs time in
proportion to the values added since the previous view plus the number of buckets, never to the
whole curve. Values that are not finite (NaN, ±inf) become gaps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_MAX_POINTS", "PeakDownsampler"]

DEFAULT_MAX_POINTS = 2000
FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]


class PeakDownsampler:
    """Indexes and values of at most ``max_points`` points that represent ``values[:n]``."""

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        if max_points < 4:
            raise ValueError(f"max_points {max_points} is too small: use 4 or more")
        self.max_points = max_points
        self.width = 1
        self._done = 0  # values[:_done] are summarised in complete buckets
        self._lo_at: IndexArray = np.empty(0, np.int64)
        self._lo: FloatArray = np.empty(0)
        self._hi_at: IndexArray = np.empty(0, np.int64)
        self._hi: FloatArray = np.empty(0)

    @property
    def _bucket_budget(self) -> int:
        return self.max_points // 2 - 1  # one more bucket for the incomplete tail

    def view(self, values: FloatArray) -> tuple[IndexArray, FloatArray]:
        """The points that show ``values`` (every value seen so far, in order; it only grows)."""
        n = len(values)
        if n <= self.max_points and self.width == 1:
            return np.arange(n, dtype=np.int64), _gaps(values)
        if self.width == 1:
            self.width = _first_width(n, self._bucket_budget)
        self._bucket(values, n - n % self.width)
        while len(self._lo) > self._bucket_budget:
            self._merge_pairs()
            self._bucket(values, n - n % self.width)
        tail_at = self._done
        lo_at, lo, hi_at, hi = (self._lo_at, self._lo, self._hi_at, self._hi)
        if tail_at < n:
            t_lo_at, t_lo, t_hi_at, t_hi = _extremes(values[tail_at:n], n - tail_at, tail_at)
            lo_at, lo = np.concatenate([lo_at, t_lo_at]), np.concatenate([lo, t_lo])
            hi_at, hi = np.concatenate([hi_at, t_hi_at]), np.concatenate([hi, t_hi])
        return _interleave(lo_at, lo, hi_at, hi)

    def _bucket(self, values: FloatArray, end: int) -> None:
        """Summarise ``values[_done:end]`` (a whole number of buckets) into new buckets."""
        if end <= self._done:
            return
        lo_at, lo, hi_at, hi = _extremes(values[self._done : end], self.width, self._done)
        self._lo_at = np.concatenate([self._lo_at, lo_at])
        self._lo = np.concatenate([self._lo, lo])
        self._hi_at = np.concatenate([self._hi_at, hi_at])
        self._hi = np.concatenate([self._hi, hi])
        self._done = end

    def _merge_pairs(self) -> None:
        count = len(self._lo) // 2 * 2
        if count < len(self._lo):  # an odd last bucket goes back to the tail
            self._done -= self.width
        lo_at, lo = self._lo_at[:count].reshape(-1, 2), self._lo[:count].reshape(-1, 2)
        hi_at, hi = self._hi_at[:count].reshape(-1, 2), self._hi[:count].reshape(-1, 2)
        pick_lo = _pick(lo, np.less_equal)
        pick_hi = _pick(hi, np.greater_equal)
        rows = np.arange(len(lo))
        self._lo_at, self._lo = lo_at[rows, pick_lo], lo[rows, pick_lo]
        self._hi_at, self._hi = hi_at[rows, pick_hi], hi[rows, pick_hi]
        self.width *= 2


def _first_width(n: int, budget: int) -> int:
    width = 1
    while n // width > budget:
        width *= 2
    return width


def _gaps(values: FloatArray) -> FloatArray:
    return np.where(np.isfinite(values), values, np.nan)


def _extremes(
    chunk: FloatArray, width: int, offset: int
) -> tuple[IndexArray, FloatArray, IndexArray, FloatArray]:
    """Per bucket of ``width`` values: where the minimum and maximum are, and their values (NaN
    at the bucket's start when the bucket has no finite value)."""
    rows = chunk.reshape(-1, width) if len(chunk) % width == 0 else chunk.reshape(1, -1)
    finite = np.isfinite(rows)
    lo_pos = np.where(finite, rows, np.inf).argmin(axis=1)
    hi_pos = np.where(finite, rows, -np.inf).argmax(axis=1)
    index = np.arange(len(rows))
    has_value = finite.any(axis=1)
    lo = np.where(has_value, rows[index, lo_pos], np.nan)
    hi = np.where(has_value, rows[index, hi_pos], np.nan)
    starts = offset + index * rows.shape[1]
    return starts + lo_pos, lo, starts + hi_pos, hi


def _pick(values: FloatArray, better: np.ufunc) -> npt.NDArray[np.intp]:
    """Column (0 or 1) of each row holding the better finite value, preferring a finite one."""
    first, second = values[:, 0], values[:, 1]
    take_second = ~np.isfinite(first) | (np.isfinite(second) & ~better(first, second))
    columns: npt.NDArray[np.intp] = take_second.astype(np.intp)
    return columns


def _interleave(
    lo_at: IndexArray, lo: FloatArray, hi_at: IndexArray, hi: FloatArray
) -> tuple[IndexArray, FloatArray]:
    """Each bucket's two extremes in index order, a single point when they coincide."""
    low_first = lo_at <= hi_at
    first_at = np.where(low_first, lo_at, hi_at)
    second_at = np.where(low_first, hi_at, lo_at)
    first = np.where(low_first, lo, hi)
    second = np.where(low_first, hi, lo)
    at = np.stack([first_at, second_at], axis=1).ravel()
    y = np.stack([first, second], axis=1).ravel()
    keep = np.ones(len(at), dtype=bool)
    keep[1::2] = second_at != first_at
    return at[keep], y[keep]
