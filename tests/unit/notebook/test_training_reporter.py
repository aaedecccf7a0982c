"""One reporter, two sinks: the widget in a kernel, metric records anywhere else."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from bf_jupyter.notebook.curve_widget import LiveCurves
from bf_jupyter.notebook.metric_records import (
    METRICS_FILE_ENV,
    STOP_FILE_ENV,
    BatchRecord,
    EndRecord,
    EpochRecord,
    parse_record,
    split_record_line,
)
from bf_jupyter.notebook.training_reporter import RecordSink, TrainingReporter, choose_sink

if TYPE_CHECKING:
    import pytest


def _fit(reporter: TrainingReporter, *, epochs: int = 2, steps: int = 3) -> None:
    reporter.train_begin(epochs=epochs, steps=steps, batch_size=4)
    for epoch in range(epochs):
        reporter.epoch_begin(epoch)
        for step in range(steps):
            reporter.batch_end(step, {"loss": 1.0 / (step + 1), "accuracy": 0.5, "note": "x"})
        reporter.epoch_end(epoch, {"loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.7})
    reporter.train_end()


def test_outside_a_kernel_the_sink_is_records() -> None:
    assert choose_sink() == "records"
    assert choose_sink("widget") == "widget"


def test_records_go_to_stdout_with_the_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = TrainingReporter(stop=lambda: None, sink="records")

    _fit(reporter)

    records = [split_record_line(line)[1] for line in capsys.readouterr().out.splitlines()]
    assert all(r is not None for r in records)
    losses = [v for r in records if isinstance(r, BatchRecord) for v in r.metrics["loss"]]
    assert len(losses) == 6
    epochs = [r for r in records if isinstance(r, EpochRecord)]
    assert epochs[0].metrics == {"loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.7}
    assert records[-1] == EndRecord(records[-1].time, False)  # type: ignore[union-attr]


def test_records_go_to_the_metrics_file_when_it_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "metrics.jsonl"
    monkeypatch.setenv(METRICS_FILE_ENV, str(target))
    reporter = TrainingReporter(stop=lambda: None, sink="records")

    _fit(reporter)

    assert capsys.readouterr().out == ""
    lines = target.read_text().splitlines()
    assert lines and all(parse_record(line) is not None for line in lines)
    assert not lines[0].startswith("BF-METRICS")


def test_non_numeric_log_values_are_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = TrainingReporter(stop=lambda: None, sink="records")

    _fit(reporter, epochs=1, steps=1)

    batch = next(
        r
        for line in capsys.readouterr().out.splitlines()
        if isinstance(r := split_record_line(line)[1], BatchRecord)
    )
    assert set(batch.metrics) == {"loss", "accuracy"}


def test_the_stop_file_asks_training_to_stop(tmp_path: Path) -> None:
    stop_file = tmp_path / "stop"
    stops: list[bool] = []
    sink = RecordSink(request_stop=lambda: stops.append(True), env={STOP_FILE_ENV: str(stop_file)})
    sink.writer.target = io.StringIO
    sink.begin(None, None, None)
    sink.idle()
    assert stops == []

    stop_file.touch()
    sink._next_check = 0.0
    sink.idle()

    assert stops == [True]
    sink.end(stopped=True)


def test_sigterm_stops_training_cleanly_and_the_handler_is_restored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stopped: list[bool] = []
    reporter = TrainingReporter(stop=lambda: stopped.append(True), sink="records")
    reporter.train_begin(epochs=1, steps=10, batch_size=1)

    os.kill(os.getpid(), signal.SIGTERM)
    reporter.batch_end(0, {"loss": 1.0})

    assert stopped == [True] and reporter.stop_requested
    reporter.train_end()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert "SIGTERM: stopping training" in capsys.readouterr().err


def test_a_program_with_its_own_sigterm_handler_keeps_it() -> None:
    def own(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        sink = RecordSink(request_stop=lambda: None, env={})
        sink.writer.target = io.StringIO
        sink.begin(None, None, None)
        assert signal.getsignal(signal.SIGTERM) is own
        sink.end(stopped=False)
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_widget_sink_feeds_a_given_widget_and_its_stop_stops_training() -> None:
    widget = LiveCurves()
    stopped: list[bool] = []
    reporter = TrainingReporter(stop=lambda: stopped.append(True), widget=widget)

    _fit(reporter, epochs=1, steps=3)
    widget.request_stop()  # after the run: nothing to stop any more

    assert len(widget.data.series["batch:loss"]) == 3
    assert widget.data.series["epoch:val_accuracy"].values().tolist() == [0.7]
    assert widget.status == "finished"
    assert stopped == []


def test_the_widget_shows_the_kernels_gpu_meter(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from bf_jupyter.kernels import gpu_report
    from bf_jupyter.slice import GpuSlice
    from tests.support.fake_nvml import FakeGpu, FakeNvml

    # Given this kernel on half of a 16 GiB GPU, holding 6 GiB at 70 %
    nvml = FakeNvml([FakeGpu(total_mib=16384)])
    nvml.gpus[0].run(os.getpid(), 6144, sm_util=70)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(gpu_report, "_shared", [])
    monkeypatch.setenv("BF_SLICE", GpuSlice.parse("1x50%").to_text())
    widget = LiveCurves()

    _fit(TrainingReporter(stop=lambda: None, widget=widget), epochs=1, steps=1)

    # Then its progress carries the same reading as the sidebar
    progress = widget.data.progress()
    assert progress["gpu_memory_used_mib"] == 6144
    assert progress["gpu_memory_total_mib"] == 8192
    assert progress["gpu_utilization_percent"] == 70
    assert progress["gpu_reading"] is True and progress["gpu_over_share"] is False


def test_without_nvml_the_widget_says_no_gpu_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from bf_jupyter.kernels import gpu_report

    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(gpu_report, "_shared", [])
    widget = LiveCurves()

    _fit(TrainingReporter(stop=lambda: None, widget=widget), epochs=1, steps=1)

    progress = widget.data.progress()
    assert progress["gpu_reading"] is False and progress["gpu_memory_used_mib"] is None
