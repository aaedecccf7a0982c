"""The live-curve widget in JupyterLab (chromium): curves drawn while a cell trains, Stop ends the
training loop of a busy kernel, and the curves come back when the saved notebook is reopened
without its kernel. Leaves screenshots at artifacts/ui/live_curves.png and live_curves_reopened.png."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.ui.conftest import ARTIFACTS, open_notebook, run_all

if TYPE_CHECKING:
    from tests.support.jupyter_process import Lab

pytestmark = [pytest.mark.ui, pytest.mark.slow]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

TRAINING_CELL = """\
import math, random, time
from bf_jupyter.notebook.curve_widget import LiveCurves

random.seed(0)
curves = LiveCurves(title="Tiny model (simulated training)")
curves.on_stop(lambda: print("Stop pressed", flush=True))
display(curves)
epochs, steps = 200, 100  # far longer than the test: it ends by Stop
curves.begin(epochs=epochs, steps=steps, batch_size=32)
curves.set_gpu_memory(2150.0, 8080.0)
for epoch in range(epochs):
    for step in range(steps):
        t = epoch * steps + step
        loss = 2.0 * math.exp(-t / 900) + 0.15 + random.gauss(0, 0.06)
        curves.add_batch(epoch, step, {"loss": loss, "accuracy": 1 - loss / 2.5})
        time.sleep(0.004)
        if curves.stop_requested:
            break
    if curves.stop_requested:
        break
    curves.add_epoch(epoch, {"loss": loss, "accuracy": 1 - loss / 2.5, "val_loss": loss * 1.1, "val_accuracy": 1 - loss / 2.3})
curves.end()
print("training ended:", curves.status)
"""


def test_live_curves_render_update_and_stop_a_busy_kernel(page: Any, lab: Lab) -> None:
    open_notebook(page, lab, "live_curves.ipynb", [TRAINING_CELL])

    run_all(page)

    widget = page.locator(".bf-lc")
    widget.wait_for(timeout=60_000)
    page.locator(".bf-lc-stats", has_text=re.compile(r"Epoch ([4-9]|\d\d+)/200")).wait_for(
        timeout=90_000
    )
    assert page.locator(".bf-lc-panel canvas").count() == 2  # loss and accuracy
    assert "samples/s" in page.locator(".bf-lc-stats").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    widget.screenshot(path=str(ARTIFACTS / "live_curves.png"))

    page.locator(".bf-lc-stop").click()

    page.locator(".jp-OutputArea-output", has_text="training ended: stopped").wait_for(
        timeout=30_000
    )
    assert "Stop pressed" in page.locator(".jp-OutputArea").first.inner_text()
    assert page.locator(".bf-lc-status").inner_text() == "stopped"
    assert page.locator(".bf-lc-stop").is_hidden()


SHORT_CELL = """\
from bf_jupyter.notebook.curve_widget import LiveCurves

curves = LiveCurves(title="Saved with the notebook")
display(curves)
curves.begin(epochs=3, steps=50, batch_size=16)
for epoch in range(3):
    for step in range(50):
        t = epoch * 50 + step
        curves.add_batch(epoch, step, {"loss": 2 / (1 + t / 20), "accuracy": t / 160})
    curves.add_epoch(epoch, {"loss": 2 / (1 + t / 20), "val_loss": 2.2 / (1 + t / 20)})
curves.end()
"""


def _saved_widget_state(path: Path) -> dict[str, Any] | None:
    """The saved widget state of the live-curve model, or None (not saved yet, or being written)."""
    try:
        notebook = json.loads(path.read_text())
    except ValueError:
        return None
    models = notebook.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return next((m for m in models.values() if m.get("model_name") == "AnyModel"), None)


def _api(lab: Lab, method: str, path: str) -> Any:
    request = urllib.request.Request(f"{lab.url}{path}?token={lab.token}", method=method)
    with urllib.request.urlopen(request, timeout=30) as reply:
        body = reply.read()
    return json.loads(body) if body else None


def test_curves_survive_saving_and_reopening_the_notebook(page: Any, lab: Lab) -> None:
    open_notebook(page, lab, "saved_curves.ipynb", [SHORT_CELL])
    run_all(page)
    page.locator(".bf-lc-status", has_text="finished").wait_for(timeout=60_000)

    page.keyboard.press("Control+s")
    path = lab.root / "saved_curves.ipynb"
    deadline = time.monotonic() + 30
    while (state := _saved_widget_state(path)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert state is not None, "JupyterLab saved the widget state with the notebook"
    assert {b["path"][1] for b in state["buffers"]} >= {"batch:loss", "epoch:val_loss"}

    for session in _api(lab, "GET", "/api/sessions"):  # no kernel holds the model any more
        _api(lab, "DELETE", f"/api/sessions/{session['id']}")
    page.reload()

    page.locator(".bf-lc-status", has_text="finished").wait_for(timeout=60_000)
    assert page.locator(".bf-lc-panel canvas").count() == 2
    assert "Epoch 3/3" in page.locator(".bf-lc-stats").inner_text()
    page.locator(".bf-lc").screenshot(path=str(ARTIFACTS / "live_curves_reopened.png"))
