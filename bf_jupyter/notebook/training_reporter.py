"""What the Keras callback does, without Keras: pick a sink, feed it, and stop training on request.

Two sinks, one behaviour:

* ``WidgetSink`` — in a kernel with a front end: a ``LiveCurves`` widget shown in the cell, its Stop
  button asks the training loop to stop after the current batch;
* ``RecordSink`` — in a batch process (a job, ``%bitfusion run``, ``%%bitfusion``): metric records
  (``metric_records``) on standard output, or in ``$BF_METRICS_FILE``; a stop is asked by creating
  ``$BF_STOP_FILE`` (``%bitfusion run`` does, for its Stop button) or by SIGTERM (a pod being deleted
  or preempted), so training ends cleanly and the program goes on to save its model.

``sink="auto"`` picks the widget when IPython runs inside a kernel, else records.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from bf_jupyter.notebook.gpu_memory import read_gpu_memory
from bf_jupyter.notebook.metric_records import METRICS_FILE_ENV, STOP_FILE_ENV, RecordWriter

if TYPE_CHECKING:
    from bf_jupyter.gpumeter import GpuReading
    from bf_jupyter.notebook.curve_widget import LiveCurves

__all__ = ["RecordSink", "SinkName", "TrainingReporter", "WidgetSink", "choose_sink"]

SinkName = Literal["auto", "widget", "records"]
_GPU_INTERVAL = 5.0  # seconds between GPU memory readings during an epoch
_STOP_CHECK_INTERVAL = 0.5
_CHECK_EVERY = 64  # batches between looks at the clock for slow periodic work


def choose_sink(sink: SinkName = "auto") -> Literal["widget", "records"]:
    """``widget`` inside an IPython kernel (a front end is attached), else ``records``."""
    if sink != "auto":
        return sink
    if "IPython" not in sys.modules:  # a plain script: never import IPython just to ask
        return "records"
    from IPython import get_ipython

    shell = get_ipython()
    return "widget" if getattr(shell, "kernel", None) is not None else "records"


class Sink(Protocol):
    def begin(self, epochs: int | None, steps: int | None, batch_size: int | None) -> None: ...
    def batch(self, epoch: int, step: int, metrics: Mapping[str, float]) -> None: ...
    def idle(self) -> None: ...
    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...
    def gpu(self, used_mib: float | None, total_mib: float | None) -> None: ...
    def end(self, *, stopped: bool) -> None: ...


class WidgetSink:
    """Feeds a ``LiveCurves`` widget, shown in the cell when training first begins."""

    def __init__(self, widget: LiveCurves | None, *, title: str, request_stop: Callable[[], None]):
        if widget is None:
            from bf_jupyter.notebook.curve_widget import LiveCurves

            widget = LiveCurves(title=title)
        self.widget = widget
        self._shown = False
        widget.on_stop(request_stop)

    def begin(self, epochs: int | None, steps: int | None, batch_size: int | None) -> None:
        if not self._shown and choose_sink() == "widget":  # only a kernel has somewhere to show it
            from IPython.display import display

            display(self.widget)  # type: ignore[no-untyped-call]
            self._shown = True
        self.widget.begin(epochs=epochs, steps=steps, batch_size=batch_size)

    def batch(self, epoch: int, step: int, metrics: Mapping[str, float]) -> None:
        self.widget.add_batch(epoch, step, metrics)

    def idle(self) -> None:
        self.widget.tick()

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.widget.add_epoch(epoch, metrics)

    def gpu(self, used_mib: float | None, total_mib: float | None) -> None:
        self.widget.set_gpu_memory(used_mib, total_mib)

    def gpu_meter(self, reading: GpuReading | None) -> None:
        self.widget.set_gpu_reading(reading)

    def end(self, *, stopped: bool) -> None:
        self.widget.end(stopped=stopped)


class RecordSink:
    """Writes metric records and watches for a stop request (stop file or SIGTERM)."""

    def __init__(self, *, request_stop: Callable[[], None], env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        self._file: IO[str] | None = None
        path = env.get(METRICS_FILE_ENV, "")
        if path:
            self._file = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 - closed in end()
            self.writer = RecordWriter(target=self._target, prefix=False)
        else:
            self.writer = RecordWriter(target=lambda: sys.stdout)
        self._stop_file = env.get(STOP_FILE_ENV, "") or None
        self._request_stop = request_stop
        self._next_check = 0.0
        self._countdown = 1
        self._previous_sigterm: Any = None
        self._terminating = False

    def _target(self) -> IO[str]:
        assert self._file is not None
        return self._file

    def begin(self, epochs: int | None, steps: int | None, batch_size: int | None) -> None:
        self._watch_sigterm()
        self.writer.begin(epochs=epochs, steps=steps, batch_size=batch_size)

    def batch(self, epoch: int, step: int, metrics: Mapping[str, float]) -> None:
        self.writer.batch(epoch, step, metrics)
        self._countdown -= 1
        if self._countdown <= 0:
            self._countdown = _CHECK_EVERY
            self.idle()

    def idle(self) -> None:
        if self._stop_file is None:
            return
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + _STOP_CHECK_INTERVAL
            if Path(self._stop_file).exists():
                self._request_stop()

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.writer.epoch(epoch, metrics)

    def gpu(self, used_mib: float | None, total_mib: float | None) -> None:
        self.writer.gpu(used_mib, total_mib)

    def end(self, *, stopped: bool) -> None:
        self.writer.end(stopped=stopped)
        self._restore_sigterm()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _watch_sigterm(self) -> None:
        """Turn the first SIGTERM into a clean stop, if the program has no SIGTERM handler of its
        own; a second SIGTERM terminates as usual."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        self._previous_sigterm = signal.SIG_DFL
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self._terminating:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self._terminating = True
        print("SIGTERM: stopping training after the current batch", file=sys.stderr, flush=True)
        self._request_stop()

    def _restore_sigterm(self) -> None:
        if (
            self._previous_sigterm is not None
            and threading.current_thread() is threading.main_thread()
        ):
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


class TrainingReporter:
    """Turns training events into sink calls; ``stop`` is how it asks the training loop to stop."""

    def __init__(
        self,
        *,
        stop: Callable[[], None],
        sink: SinkName = "auto",
        widget: LiveCurves | None = None,
        title: str = "Training",
        backend: str | None = None,
    ) -> None:
        self._stop = stop
        self.stop_requested = False
        self._backend = backend
        self._epoch = 0
        self._next_gpu = 0.0
        self._countdown = _CHECK_EVERY
        self._float_keys: AbstractSet[str] = frozenset()  # logs keys that all hold floats
        if widget is not None or choose_sink(sink) == "widget":
            self.sink: Sink = WidgetSink(widget, title=title, request_stop=self.request_stop)
        else:
            self.sink = RecordSink(request_stop=self.request_stop)

    def request_stop(self) -> None:
        self.stop_requested = True
        self._stop()

    def train_begin(self, *, epochs: int | None, steps: int | None, batch_size: int | None) -> None:
        self.stop_requested = False
        self.sink.begin(epochs, steps, batch_size)
        self._report_gpu()

    def epoch_begin(self, epoch: int) -> None:
        self._epoch = epoch

    def batch_end(self, step: int, logs: Mapping[str, Any] | None) -> None:
        """After each training batch: the hot path, a few microseconds."""
        if not logs:
            metrics: Mapping[str, float] = {}
        elif logs.keys() == self._float_keys:  # Keras sends the same float metrics every batch
            metrics = logs
        else:
            metrics = {k: v for k, v in logs.items() if type(v) is float}
            self._float_keys = frozenset(metrics) if len(metrics) == len(logs) else frozenset()
        self.sink.batch(self._epoch, step, metrics)
        self._countdown -= 1
        if self._countdown <= 0:
            self._countdown = _CHECK_EVERY
            if time.monotonic() >= self._next_gpu:
                self._report_gpu()

    def idle(self) -> None:
        """Between validation batches: keep the Stop button and the display alive."""
        self.sink.idle()

    def epoch_end(self, epoch: int, logs: Mapping[str, Any] | None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        self._report_gpu()
        self.sink.epoch(epoch, metrics)

    def train_end(self) -> None:
        self.sink.end(stopped=self.stop_requested)

    def _report_gpu(self) -> None:
        self._next_gpu = time.monotonic() + _GPU_INTERVAL
        meter = getattr(self.sink, "gpu_meter", None)
        if meter is not None:  # in a kernel: the same reading the sidebar shows (NVML, per process)
            from bf_jupyter.kernels.gpu_report import own_reading

            reading = own_reading()
            meter(reading)
            if reading is not None and reading.memory_used_mib is not None:
                self.sink.gpu(reading.memory_used_mib, reading.memory_limit_mib)
                return
        used, total = read_gpu_memory(self._backend)
        if used is not None or total is not None:
            self.sink.gpu(used, total)


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and hasattr(value, "__float__")
