"""Downsampled curves stay within the point budget and keep their peaks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bf_jupyter.notebook.downsample import PeakDownsampler

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def _check_view(values: np.ndarray, at: np.ndarray, y: np.ndarray, max_points: int) -> None:
    assert len(at) == len(y) <= max_points
    assert np.all(np.diff(at) >= 0), "points are in order"
    shown = ~np.isnan(y)
    assert np.array_equal(y[shown], values[at[shown]]), "every point is a real sample"
    if np.isfinite(values).any():
        assert np.nanmax(y) == np.nanmax(np.where(np.isfinite(values), values, np.nan))
        assert np.nanmin(y) == np.nanmin(np.where(np.isfinite(values), values, np.nan))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(finite, min_size=1, max_size=3000),
    st.integers(min_value=4, max_value=300),
)
def test_any_curve_fits_the_budget_and_keeps_its_extremes(
    values: list[float], max_points: int
) -> None:
    array = np.array(values)

    at, y = PeakDownsampler(max_points).view(array)

    _check_view(array, at, y, max_points)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(finite, min_size=1, max_size=400), min_size=1, max_size=12))
def test_a_growing_curve_viewed_after_each_chunk_stays_within_budget(
    chunks: list[list[float]],
) -> None:
    sampler = PeakDownsampler(64)
    seen: list[float] = []
    for chunk in chunks:
        seen.extend(chunk)
        array = np.array(seen)
        at, y = sampler.view(array)
        _check_view(array, at, y, 64)


def test_a_million_values_become_at_most_two_thousand_points_with_the_spike_kept() -> None:
    values = np.linspace(1.0, 0.1, 1_000_000)
    values[777_777] = 50.0  # one bad batch
    values[123_456] = -3.0
    sampler = PeakDownsampler(2000)

    at, y = sampler.view(values)

    assert len(at) <= 2000
    assert 777_777 in at and 123_456 in at
    assert y.max() == 50.0 and y.min() == -3.0


def test_short_curves_are_sent_whole() -> None:
    values = np.array([3.0, 1.0, 2.0])

    at, y = PeakDownsampler(10).view(values)

    assert at.tolist() == [0, 1, 2]
    assert y.tolist() == [3.0, 1.0, 2.0]


def test_values_that_are_not_finite_become_gaps_not_points() -> None:
    values = np.concatenate(
        [np.ones(500), np.full(500, np.nan), np.full(500, np.inf), np.zeros(500)]
    )

    at, y = PeakDownsampler(100).view(values)

    assert len(at) <= 100
    assert np.isnan(y).any()
    assert set(y[~np.isnan(y)].tolist()) == {0.0, 1.0}
