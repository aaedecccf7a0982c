"""A user picks 1 × 50 % in the GPU slices sidebar, runs code in a console on it, and stops it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.ui.sidebar.conftest import Lab

pytestmark = pytest.mark.ui
PANEL = ".jp-BfJupyter-panel"
TIMEOUT_MS = 60_000


def _open_sidebar(page: Any, lab: Lab) -> Any:
    page.goto(f"{lab.url}/lab?token={lab.token}")
    page.locator('li[data-id="bf-jupyter-gpu-slices"]').click(timeout=TIMEOUT_MS)
    panel = page.locator(PANEL)
    panel.wait_for(state="visible")
    return panel


def test_a_console_on_half_a_gpu_runs_code_is_listed_and_stops(
    page: Any, lab: Lab, artifacts: Path
) -> None:
    # Given the sidebar, open
    panel = _open_sidebar(page, lab)
    panel.get_by_text("Simulated V100-16GB").first.wait_for(timeout=TIMEOUT_MS)
    # When the user asks for more than the quota leaves, launching is off and says why
    panel.get_by_role("button", name="More GPUs").click()
    panel.get_by_label("Share of each GPU in percent").fill("100")
    panel.get_by_text(
        "costs 200 bitfusion.io/gpu units but only 150 of 150 remain", exact=False
    ).wait_for(timeout=TIMEOUT_MS)
    assert panel.get_by_role("button", name="New console").is_disabled()
    panel.get_by_role("button", name="Fewer GPUs").click()
    # When the user chooses 1 GPU × 50 %
    panel.get_by_label("Share of each GPU in percent").fill("50")
    assert panel.locator("#jp-BfJupyter-gpus").input_value() == "1"
    panel.get_by_text("1x50% · costs 50 units (0.5 GPU)").wait_for(timeout=TIMEOUT_MS)
    panel.screenshot(path=str(artifacts / "sidebar-light.png"))
    # and launches a console on it
    panel.get_by_role("button", name="New console").click()
    prompt = page.locator(".jp-CodeConsole-promptCell .jp-InputArea-editor")
    prompt.wait_for(timeout=TIMEOUT_MS)
    panel.locator('.jp-BfJupyter-startup[data-state="ready"]').wait_for(timeout=TIMEOUT_MS)
    # Then code runs on it
    prompt.click()
    page.keyboard.type("print(6*7)")
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-CodeConsole .jp-OutputArea-output").filter(has_text="42")
    output.first.wait_for(timeout=TIMEOUT_MS)
    # and the kernel is listed with its slice
    listed = panel.locator(".jp-BfJupyter-kernel").filter(has_text="1x50%")
    listed.wait_for(timeout=TIMEOUT_MS)
    page.evaluate(
        "window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})"
    )
    page.locator('body[data-jp-theme-light="false"]').wait_for(state="attached", timeout=TIMEOUT_MS)
    panel.screenshot(path=str(artifacts / "sidebar-dark.png"))
    # When the user stops it
    listed.get_by_role("button", name="Stop").click()
    # Then it is gone from the list
    panel.locator(".jp-BfJupyter-kernel").first.wait_for(state="detached", timeout=TIMEOUT_MS)
    panel.get_by_text("No GPU kernels are running.").wait_for(timeout=TIMEOUT_MS)
