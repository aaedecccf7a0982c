"""``LiveCurves``: the live training-curve widget (anywidget, canvas drawing in a bundled ES module).

Why anywidget: the widget is one Python class plus one ES module file shipped in this package — no
separate JupyterLab extension to build and version, no CDN (anywidget's own front end is a prebuilt
extension in its wheel), and the ES module travels in the widget state, so a saved notebook renders
its curves again when reopened, in JupyterLab, Notebook 7 or VS Code. bqplot would add a large
dependency and a JSON-per-point model; drawing on a canvas ourselves keeps 2,000-point redraws cheap.

What the widget sends (the state saved with the notebook): ``curves``, one entry per series
(``batch:loss``, ``epoch:val_accuracy``, ...) holding the downsampled x (float64) and y (float32)
as binary buffers; ``progress`` (epoch, step, samples/s, ETA, GPU memory); ``status``. Updates are
throttled by time (at most one message per ``min_interval``, default 0.1 s, and fewer when the
payload is large, see ``SendThrottle``), with a trailing update on ``flush``/``end``.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from bf_jupyter.notebook.curve_data import TrainingCurves
from bf_jupyter.notebook.downsample import DEFAULT_MAX_POINTS
from bf_jupyter.notebook.ui_poll import KernelEventPump

if TYPE_CHECKING:
    from bf_jupyter.gpumeter import GpuReading

__all__ = ["LiveCurves", "SendThrottle"]

_STATIC = Path(__file__).with_name("static")
STATUSES = ("waiting", "running", "stopping", "stopped", "finished", "failed", "detached")


@dataclass
class SendThrottle:
    """When the next front-end message may go: ``min_interval`` apart (≤ 1/min_interval messages
    per second), stretched so that curve data stays under ``bytes_per_second``."""

    min_interval: float = 0.1
    bytes_per_second: float = 512 * 1024
    clock: Callable[[], float] = _time.monotonic
    _next: float = field(default=float("-inf"))

    def due(self) -> bool:
        return self.clock() >= self._next

    def sent(self, nbytes: int) -> None:
        self._next = self.clock() + max(self.min_interval, nbytes / self.bytes_per_second)


class LiveCurves(anywidget.AnyWidget):
    """Loss, accuracy and every other metric per batch and per epoch, with throughput, ETA, GPU
    memory and a Stop button. Feed it with ``begin``/``add_batch``/``add_epoch``/``end`` (the Keras
    callback and ``%bitfusion`` do); the Python object keeps every value (``data``)."""

    _esm = _STATIC / "live_curves.js"
    _css = _STATIC / "live_curves.css"

    title = traitlets.Unicode("Training").tag(sync=True)
    status = traitlets.Unicode("waiting").tag(sync=True)
    stoppable = traitlets.Bool(False).tag(sync=True)
    stop_hint = traitlets.Unicode("").tag(sync=True)
    progress = traitlets.Dict().tag(sync=True)
    curves = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        *,
        title: str = "Training",
        max_points: int = DEFAULT_MAX_POINTS,
        min_interval: float = 0.1,
        clock: Callable[[], float] = _time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(title=title, **kwargs)
        self.data = TrainingCurves(max_points=max_points)
        self._clock = clock
        self._throttle = SendThrottle(min_interval=min_interval, clock=clock)
        self._poll_interval = min_interval
        self._next_poll = float("-inf")
        self._stop_handlers: list[Callable[[], None]] = []
        self._stop_requested = False
        self._pump = KernelEventPump.for_comm(getattr(self, "comm", None))
        self.messages_sent = 0
        self.on_msg(self._on_front_end_message)

    # ----- stop ----------------------------------------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        """True once the Stop button was pressed (or ``request_stop`` called) during this run."""
        return self._stop_requested

    def on_stop(self, handler: Callable[[], None], *, hint: str = "") -> None:
        """Call ``handler`` when Stop is pressed; the button is offered only while a handler is set
        and front-end messages can reach this kernel during a cell."""
        self._stop_handlers.append(handler)
        self.stop_hint = hint
        self._update_stoppable()

    def request_stop(self) -> None:
        """What the Stop button does: mark the run as stopping and call the stop handlers once."""
        if self._stop_requested or self.status not in {"running", "waiting"}:
            return
        self._stop_requested = True
        self.status = "stopping"
        self.stoppable = False
        for handler in self._stop_handlers:
            handler()

    def _on_front_end_message(self, _: Any, content: Any, buffers: Sequence[Any]) -> None:
        if isinstance(content, dict) and content.get("event") == "stop":
            self.request_stop()

    def _update_stoppable(self) -> None:
        self.stoppable = (
            bool(self._stop_handlers)
            and self.status == "running"
            and not self._stop_requested
            # Without the pump a click would only reach the kernel once the cell has ended.
            and self._pump is not None
        )

    # ----- feeding -------------------------------------------------------------------------------

    def begin(
        self,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        time: float | None = None,
    ) -> None:
        """A training run starts (another ``begin`` continues the same curves)."""
        self.data.begin(epochs=epochs, steps=steps, batch_size=batch_size, time=self._now(time))
        self._stop_requested = False
        with self.hold_sync():  # one message for status, button and first progress
            self.status = "running"
            self._update_stoppable()
            self.flush(time)

    def add_batch(
        self, epoch: int, step: int, metrics: Mapping[str, float], time: float | None = None
    ) -> None:
        """One batch (``step`` counts from 0 within ``epoch``, itself from 0)."""
        now = self._clock()
        self.data.add_batch(epoch, step, metrics, now if time is None else time)
        if now >= self._next_poll:
            self.tick(time)

    def add_batches(
        self,
        epoch: int,
        last_step: int,
        metrics: Mapping[str, Sequence[float]],
        time: float | None = None,
    ) -> None:
        """Several batches at once (one metric record), ``last_step`` being the last one's step."""
        self.data.add_batches(epoch, last_step, metrics, self._now(time))
        self.tick(time)

    def add_epoch(
        self, epoch: int, metrics: Mapping[str, float], time: float | None = None
    ) -> None:
        self.data.add_epoch(epoch, metrics, self._now(time))
        self.tick(time)

    def set_gpu_memory(self, used_mib: float | None, total_mib: float | None = None) -> None:
        self.data.set_gpu_memory(used_mib, total_mib)

    def set_gpu_reading(self, reading: GpuReading | None) -> None:
        """The kernel's GPU meter (as the sidebar shows it); None: "no GPU reading"."""
        self.data.set_gpu_reading(reading)

    def end(
        self,
        *,
        stopped: bool = False,
        failed: bool = False,
        detached: bool = False,
        time: float | None = None,
    ) -> None:
        """This view of the run is over — it finished, stopped, failed, or goes on unwatched
        (``detached``: a pod we stopped following) — with a last update holding everything."""
        with self.hold_sync():
            if failed:
                self.status = "failed"
            elif detached:
                self.status = "detached"
            else:
                self.status = "stopped" if stopped or self._stop_requested else "finished"
            self.stoppable = False
            self.flush(time)

    # ----- sending -------------------------------------------------------------------------------

    def tick(self, time: float | None = None) -> None:
        """Handle a pending Stop click and send an update when one is due (cheap to call often)."""
        now = self._clock()
        if now < self._next_poll:
            return
        self._next_poll = now + self._poll_interval
        if self._pump is not None:
            self._pump.poll()
        if self._throttle.due():
            self._push(time)

    def flush(self, time: float | None = None) -> None:
        """Send what changed now, whatever the throttle says (the trailing update)."""
        self._push(time)

    def _push(self, time: float | None) -> None:
        progress = self.data.progress(time if time is not None else self._clock())
        changed = self.data.has_changes()
        if not changed and progress == self.progress:
            return
        nbytes = 0
        with self.hold_sync():
            self.progress = progress
            if changed:
                curves = self.data.payload()
                nbytes = sum(len(c["x"]) + len(c["y"]) for c in curves.values())
                self.curves = curves
        self.messages_sent += 1
        self._throttle.sent(nbytes)

    def _now(self, time: float | None) -> float:
        return self._clock() if time is None else time
