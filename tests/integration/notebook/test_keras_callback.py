"""The Keras callback with a tiny real model: records in a batch process, the widget in a kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bf_jupyter.notebook.metric_records import (
    BatchRecord,
    BeginRecord,
    EndRecord,
    EpochRecord,
    parse_record,
    split_record_line,
)

pytestmark = pytest.mark.tensorflow

TRAIN = """
import numpy as np
import keras
from bf_jupyter.notebook.keras_callback import LiveCurvesCallback

rng = np.random.default_rng(0)
x = rng.random((96, 4), dtype="float32")
y = (x.sum(axis=1) > 2).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0, callbacks=[LiveCurvesCallback()])
print("fit returned")
"""


def _train(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        check=True,
    )


def test_in_a_batch_process_it_writes_records_to_stdout(tmp_path: Path) -> None:
    result = _train(tmp_path)

    records = [r for line in result.stdout.splitlines() if (r := split_record_line(line)[1])]
    begin = records[0]
    assert isinstance(begin, BeginRecord)
    assert (begin.epochs, begin.steps, begin.batch_size) == (2, 5, 16)
    losses = [v for r in records if isinstance(r, BatchRecord) for v in r.metrics["loss"]]
    assert len(losses) == 10  # every batch of both epochs
    epochs = [r for r in records if isinstance(r, EpochRecord)]
    assert [e.epoch for e in epochs] == [0, 1]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epochs[0].metrics)
    assert records[-1] == EndRecord(records[-1].time, False)
    assert "fit returned" in result.stdout


def test_with_a_metrics_file_and_a_stop_request_it_stops_cleanly(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    stop = tmp_path / "stop"
    stop.touch()  # Stop was pressed before training began: it ends after the first batch

    result = _train(tmp_path, BF_METRICS_FILE=str(metrics), BF_STOP_FILE=str(stop))

    assert "BF-METRICS" not in result.stdout
    assert "fit returned" in result.stdout
    records = [parse_record(line) for line in metrics.read_text().splitlines()]
    losses = [v for r in records if isinstance(r, BatchRecord) for v in r.metrics["loss"]]
    assert len(losses) == 1
    assert isinstance(records[-1], EndRecord) and records[-1].stopped


def test_in_a_kernel_it_drives_the_widget_and_stop_ends_training_after_the_current_batch() -> None:
    keras: Any = pytest.importorskip("keras")
    import numpy as np

    from bf_jupyter.notebook.curve_widget import LiveCurves
    from bf_jupyter.notebook.keras_callback import LiveCurvesCallback

    widget = LiveCurves()
    curves = LiveCurvesCallback(widget=widget)

    class PressStop(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 2:
                widget.request_stop()

    rng = np.random.default_rng(0)
    x = rng.random((160, 4), dtype="float32")
    y = (x.sum(axis=1) > 2).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])

    model.fit(
        x,
        y,
        epochs=3,
        batch_size=16,
        validation_split=0.25,
        verbose=0,
        callbacks=[curves, PressStop()],
    )

    assert curves.widget is widget
    assert len(widget.data.series["batch:loss"]) == 3
    assert len(widget.data.series["epoch:val_loss"]) == 1
    assert widget.status == "stopped"
    assert widget.progress["batch_size"] == 16 and widget.progress["steps"] == 8
