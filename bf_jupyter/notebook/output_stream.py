"""Output of a training process shown in the cell: text as it comes, metric records as curves.

``OutputRouter`` takes the lines of ``%bitfusion run``, ``%%bitfusion``, ``submit`` and ``logs``:
metric records (``metric_records``) are hidden from the text and fed to a ``CurveFeed``, everything
else is written to the cell's stdout/stderr. ``CurveFeed`` shows a ``LiveCurves`` widget at the first
record when a front end is attached (an IPython kernel), else prints one line per epoch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from bf_jupyter.notebook.metric_records import (
    BatchRecord,
    BeginRecord,
    EndRecord,
    EpochRecord,
    GpuMemoryRecord,
    MetricRecord,
    split_record_line,
)
from bf_jupyter.notebook.training_reporter import choose_sink

if TYPE_CHECKING:
    from bf_jupyter.notebook.curve_widget import LiveCurves

__all__ = ["CurveFeed", "OutputRouter"]


class CurveFeed:
    """Turns metric records into live curves (or epoch lines without a front end).

    ``stop`` is what the widget's Stop button does for this process (None: no button)."""

    def __init__(
        self,
        *,
        title: str,
        stop: Callable[[], None] | None = None,
        stop_hint: str = "",
        use_widget: bool | None = None,
        out: Callable[[], TextIO] = lambda: sys.stdout,
    ) -> None:
        self.title = title
        self._stop = stop
        self._stop_hint = stop_hint
        self._use_widget = choose_sink() == "widget" if use_widget is None else use_widget
        self._out = out
        self.widget: LiveCurves | None = None
        self.records = 0
        self._epochs: int | None = None
        self._ended = False

    def record(self, record: MetricRecord) -> None:
        self.records += 1
        if self._use_widget:
            self._to_widget(record)
        else:
            self._to_text(record)

    def tick(self) -> None:
        if self.widget is not None:
            self.widget.tick()

    def close(self, *, failed: bool = False, stopped: bool = False, detached: bool = False) -> None:
        """The process is over (or no longer followed): end the curves if its records did not."""
        if self.widget is not None and not self._ended:
            self.widget.end(failed=failed, stopped=stopped, detached=detached)
            self._ended = True

    def _widget(self) -> LiveCurves:
        if self.widget is None:
            from IPython.display import display

            from bf_jupyter.notebook.curve_widget import LiveCurves

            self.widget = LiveCurves(title=self.title)
            if self._stop is not None:
                self.widget.on_stop(self._stop, hint=self._stop_hint)
            display(self.widget)  # type: ignore[no-untyped-call]
        return self.widget

    def _to_widget(self, record: MetricRecord) -> None:
        widget = self._widget()
        if isinstance(record, BatchRecord):
            if widget.status == "waiting":
                widget.begin(time=record.time)
            widget.add_batches(record.epoch, record.step, record.metrics, time=record.time)
        elif isinstance(record, EpochRecord):
            widget.add_epoch(record.epoch, record.metrics, time=record.time)
        elif isinstance(record, BeginRecord):
            self._ended = False
            widget.begin(
                epochs=record.epochs,
                steps=record.steps,
                batch_size=record.batch_size,
                time=record.time,
            )
        elif isinstance(record, GpuMemoryRecord):
            widget.set_gpu_memory(record.used_mib, record.total_mib)
        elif isinstance(record, EndRecord):
            widget.end(stopped=record.stopped, time=record.time)
            self._ended = True

    def _to_text(self, record: MetricRecord) -> None:
        if isinstance(record, BeginRecord):
            self._epochs = record.epochs
        elif isinstance(record, EpochRecord):
            of = f"/{self._epochs}" if self._epochs else ""
            values = " · ".join(f"{k} {v:.4g}" for k, v in record.metrics.items())
            print(f"epoch {record.epoch + 1}{of}: {values}", file=self._out(), flush=True)
        elif isinstance(record, EndRecord) and record.stopped:
            print("training stopped early", file=self._out(), flush=True)


class OutputRouter:
    """Routes a process's output lines: records to ``feed``, text to the cell."""

    def __init__(
        self,
        feed: CurveFeed,
        *,
        stdout: Callable[[], TextIO] = lambda: sys.stdout,
        stderr: Callable[[], TextIO] = lambda: sys.stderr,
    ) -> None:
        self.feed = feed
        self._streams = {"stdout": stdout, "stderr": stderr}

    def line(self, stream: str, text: str) -> None:
        shown, record = split_record_line(text)
        if record is not None:
            self.feed.record(record)
            if not shown.strip():
                return
        target = self._streams.get(stream, self._streams["stdout"])()
        target.write(shown + "\n")

    def idle(self) -> None:
        # No flush here: the kernel's output streams flush themselves every 0.2 s.
        self.feed.tick()
