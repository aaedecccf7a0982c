"""The data behind the curves: every value kept compactly, progress, throughput and ETA."""

from __future__ import annotations

import numpy as np
import pytest

from bf_jupyter.notebook.curve_data import MetricSeries, TrainingCurves


def test_a_series_keeps_every_value_in_eight_bytes_and_no_x_when_batches_are_consecutive() -> None:
    series = MetricSeries()

    for i in range(10_000):
        series.append(float(i), i * 0.5)

    assert len(series) == 10_000
    assert series.values()[-1] == 4999.5
    assert series.nbytes() == 80_000


def test_a_series_that_skips_positions_stores_its_x() -> None:
    series = MetricSeries()
    series.append(5.0, 1.0)
    series.append(6.0, 2.0)
    series.append(10.0, 3.0)

    payload = series.payload()

    assert np.frombuffer(payload["x"], "<f8").tolist() == [5.0, 6.0, 10.0]
    assert np.frombuffer(payload["y"], "<f4").tolist() == [1.0, 2.0, 3.0]
    assert series.nbytes() == 48


def test_batch_and_epoch_values_share_the_batch_count_as_x() -> None:
    curves = TrainingCurves()
    curves.begin(epochs=2, steps=3, batch_size=4, time=0.0)
    for step in range(3):
        curves.add_batch(0, step, {"loss": 1.0 - step / 10}, time=step + 1.0)
    curves.add_epoch(0, {"loss": 0.8, "val_loss": 0.9}, time=4.0)

    payload = curves.payload()

    assert set(payload) == {"batch:loss", "epoch:loss", "epoch:val_loss"}
    assert np.frombuffer(payload["batch:loss"]["x"], "<f8").tolist() == [0.0, 1.0, 2.0]
    assert np.frombuffer(payload["epoch:val_loss"]["x"], "<f8").tolist() == [3.0]
    assert payload["batch:loss"]["count"] == 3


def test_progress_reports_throughput_in_samples_and_eta_from_the_batch_rate() -> None:
    curves = TrainingCurves()
    curves.begin(epochs=2, steps=100, batch_size=32, time=0.0)
    for step in range(50):
        curves.add_batch(0, step, {"loss": 1.0}, time=(step + 1) * 0.01)

    progress = curves.progress(time=0.5)

    assert progress["epoch"] == 1 and progress["step"] == 50
    assert progress["batches_per_second"] == pytest.approx(100.0)
    assert progress["samples_per_second"] == pytest.approx(3200.0)
    assert progress["eta_seconds"] == pytest.approx(1.5)  # 150 batches left at 100/s


def test_progress_without_a_batch_size_has_no_samples_per_second_and_unknown_steps_no_eta() -> None:
    curves = TrainingCurves()
    curves.begin(epochs=None, steps=None, batch_size=None, time=0.0)
    curves.add_batch(0, 0, {"loss": 1.0}, time=1.0)

    progress = curves.progress(time=1.0)

    assert progress["samples_per_second"] is None
    assert progress["eta_seconds"] is None
    assert progress["batches_per_second"] == pytest.approx(1.0)


def test_gpu_memory_shows_in_progress() -> None:
    curves = TrainingCurves()
    curves.set_gpu_memory(1024.0, 8080.0)
    curves.set_gpu_memory(2048.0, None)

    progress = curves.progress()

    assert progress["gpu_memory_used_mib"] == 2048.0
    assert progress["gpu_memory_total_mib"] == 8080.0


def test_payload_recomputes_only_series_that_changed() -> None:
    curves = TrainingCurves()
    curves.add_batch(0, 0, {"loss": 1.0, "accuracy": 0.5}, time=0.0)
    first = curves.payload()
    curves.add_epoch(0, {"val_loss": 1.0}, time=1.0)

    second = curves.payload()

    assert second["batch:loss"] is first["batch:loss"]
    assert "epoch:val_loss" in second
    assert not curves.has_changes()


def test_records_with_several_batches_number_their_steps_backwards_from_the_last() -> None:
    curves = TrainingCurves()
    curves.add_batches(1, 9, {"loss": [0.3, 0.2, 0.1]}, time=5.0)

    progress = curves.progress()

    assert progress["step"] == 10 and progress["epoch"] == 2
    assert curves.series["batch:loss"].values().tolist() == [0.3, 0.2, 0.1]


# ----- bounded memory ------------------------------------------------------------------------------


def test_a_batch_series_past_its_bound_keeps_its_peaks_and_its_count() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=100_000)
    values[12_345], values[67_890] = 50.0, -50.0  # the spikes a person looks for
    series = MetricSeries(max_points=200, max_stored=1_000)
    for i, value in enumerate(values):
        series.append(float(i), float(value))

    assert len(series) <= 1_000
    assert series.seen == 100_000
    stored = series.values()
    assert stored.max() == 50.0 and stored.min() == -50.0
    positions = series.positions()
    assert positions[stored.argmax()] == 12_345 and positions[stored.argmin()] == 67_890
    assert np.all(np.diff(positions) > 0)  # still in order
    payload = series.payload()
    assert payload["count"] == 100_000 and payload["points"] <= 200


def test_epoch_values_are_kept_exactly_however_many_batches_came() -> None:
    curves = TrainingCurves(max_points=100, max_stored=64)
    losses = [1.0 / (epoch + 1) for epoch in range(300)]
    for epoch, loss in enumerate(losses):
        curves.add_batches(epoch, 9, {"loss": [loss] * 10}, time=float(epoch))
        curves.add_epoch(epoch, {"val_loss": loss}, time=float(epoch))

    assert list(curves.series["epoch:val_loss"].values()) == losses
    assert len(curves.series["batch:loss"]) <= 64
    assert curves.series["batch:loss"].seen == 3_000


def test_metric_names_past_the_series_cap_are_ignored() -> None:
    curves = TrainingCurves(max_series=8)
    curves.add_batches(0, 0, {f"m{i}": [1.0] for i in range(100)}, time=0.0)
    curves.add_epoch(0, {f"e{i}": 1.0 for i in range(100)}, time=1.0)

    assert len(curves.series) == 8
    assert curves.ignored_values == 92 + 100
    assert len(curves.payload()) == 8
