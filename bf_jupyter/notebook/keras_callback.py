"""``LiveCurvesCallback``: the one Keras callback for live curves, in a notebook or in a job.

    from bf_jupyter.notebook.keras_callback import LiveCurvesCallback
    model.fit(x, y, epochs=10, validation_split=0.2, callbacks=[LiveCurvesCallback()])

In a kernel with a front end it shows a ``LiveCurves`` widget in the cell; anywhere else it writes
metric records (see ``metric_records``) to standard output or to ``$BF_METRICS_FILE``, which
``%bitfusion run``, ``%%bitfusion``, ``%bitfusion submit`` and ``%bitfusion logs`` turn back into the
widget. Keras 3 API only (``import keras``), so it runs on the TensorFlow, JAX and PyTorch backends.

This module imports Keras; nothing else in the package imports it, so importing ``bf_jupyter`` (and
loading the magic) stays fast.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

import keras

from bf_jupyter.notebook.training_reporter import SinkName, TrainingReporter

if TYPE_CHECKING:
    from bf_jupyter.notebook.curve_widget import LiveCurves

__all__ = ["LiveCurvesCallback"]


class LiveCurvesCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Live curves of ``fit()``: loss, accuracy and every ``val_*`` metric per batch and per
    epoch, throughput, ETA, GPU memory, and a Stop button that ends training cleanly.

    Arguments (all optional): ``sink`` ``"auto"`` (widget in a kernel, records elsewhere),
    ``"widget"`` or ``"records"``; ``widget`` an existing ``LiveCurves`` to feed; ``title``;
    ``batch_size`` when it cannot be read from ``fit()`` (throughput is then in batches/s).
    """

    def __init__(
        self,
        *,
        sink: SinkName = "auto",
        widget: LiveCurves | None = None,
        title: str = "Training",
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self._batch_size = batch_size
        self._spe = 1
        self.reporter = TrainingReporter(
            stop=self._stop_training,
            sink=sink,
            widget=widget,
            title=title,
            backend=keras.backend.backend(),
        )

    @property
    def widget(self) -> LiveCurves | None:
        """The widget this callback drives (None when it writes records)."""
        return getattr(self.reporter.sink, "widget", None)

    def _stop_training(self) -> None:
        if self.model is not None:
            self.model.stop_training = True

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        params = self.params or {}
        # fit() calls back once per execution of ``steps_per_execution`` steps.
        self._spe = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        steps = params.get("steps")
        batch_size = self._batch_size or _batch_size_of_running_fit()
        self.reporter.train_begin(
            epochs=params.get("epochs"),
            steps=None if steps is None else math.ceil(steps / self._spe),
            batch_size=None if batch_size is None else batch_size * self._spe,
        )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.reporter.epoch_begin(epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.reporter.batch_end(batch // self._spe, logs)

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.reporter.idle()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.reporter.epoch_end(epoch, logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.reporter.train_end()


def _batch_size_of_running_fit() -> int | None:
    """The batch size of the ``fit()`` that is calling us, read from its epoch iterator's data
    adapter (Keras 3 does not pass it to callbacks). None when it cannot be found."""
    frame = inspect.currentframe()
    try:
        for _ in range(12):
            if frame is None:
                return None
            iterator = frame.f_locals.get("epoch_iterator")
            adapter = getattr(iterator, "data_adapter", None)
            if adapter is not None:
                size = getattr(adapter, "batch_size", None)
                return int(size) if size else None
            frame = frame.f_back
    except (TypeError, ValueError):
        return None
    finally:
        del frame
    return None
