"""The live-curve widget in JupyterLab (chromium): curves drawn while a cell trains, Stop ends the
training loop of a busy kernel. Leaves a screenshot at artifacts/ui/live_curves.png."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.ui.conftest import ARTIFACTS, open_notebook, run_all

if TYPE_CHECKING:
    from tests.ui.conftest import Lab

pytestmark = [pytest.mark.ui, pytest.mark.slow]

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
