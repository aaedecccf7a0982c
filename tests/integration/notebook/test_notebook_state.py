"""A notebook executed headless (nbclient) saves the widget's state, curve data included, so the
curves render again when the notebook is reopened without a kernel."""

from __future__ import annotations

import base64
from typing import Any

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.tensorflow

CELLS = [
    "import numpy as np, keras\nfrom bf_jupyter.notebook.keras_callback import LiveCurvesCallback",
    "rng = np.random.default_rng(0)\n"
    "x = rng.random((128, 4), dtype='float32'); y = (x.sum(axis=1) > 2).astype('float32')\n"
    "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation='sigmoid')])\n"
    "model.compile(optimizer='sgd', loss='binary_crossentropy', metrics=['accuracy'])\n"
    "callback = LiveCurvesCallback(title='tiny model')\n"
    "model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[callback]);",
]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _curve(state: dict[str, Any], key: str, axis: str) -> np.ndarray:
    """Decode one saved curve buffer (base64 in the notebook file)."""
    path = ["curves", key, axis]
    buffer = next(b for b in state["buffers"] if b["path"] == path)
    dtype = "<f8" if axis == "x" else "<f4"
    return np.frombuffer(base64.b64decode(buffer["data"]), dtype=dtype)


def test_the_saved_notebook_carries_the_curves(tmp_path: Any) -> None:
    cells = [nbformat.v4.new_code_cell(c) for c in CELLS]  # type: ignore[no-untyped-call]
    notebook = nbformat.v4.new_notebook(cells=cells)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )

    client.execute()
    path = tmp_path / "trained.ipynb"
    nbformat.write(notebook, path)  # type: ignore[no-untyped-call]
    saved = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]

    models = saved.metadata["widgets"][WIDGET_STATE]["state"]
    curves = [m for m in models.values() if m["model_name"] == "AnyModel"]
    assert len(curves) == 1
    state = curves[0]["state"]
    assert state["title"] == "tiny model"
    assert state["status"] == "finished"
    assert "export default" in state["_esm"]  # the view's code travels with the state
    assert set(state["curves"]) >= {
        "batch:loss",
        "batch:accuracy",
        "epoch:loss",
        "epoch:val_loss",
        "epoch:val_accuracy",
    }
    assert state["curves"]["batch:loss"]["count"] == 18  # 6 batches × 3 epochs
    assert len(_curve(curves[0], "batch:loss", "y")) == 18
    assert _curve(curves[0], "epoch:val_loss", "x").tolist() == [6.0, 12.0, 18.0]
    output = saved.cells[1].outputs[0]
    assert output["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] in models
