"""A user picks 1 × 50 % in the GPU slices sidebar, runs code in a console on it, and stops it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.ui.sidebar.conftest import HAVE_PROVISIONER

if TYPE_CHECKING:
    from tests.support.jupyter_process import Lab

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


# ----- a notebook on a slice, and a notebook's kernel moved to one --------------------------------

SHOW_SLICE = "import os; print('slice', os.environ.get('BF_SIM_SLICE'))"
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def _gpu_kernel_name(lab: Lab) -> str:
    """The display name of the kernelspec the sidebar launches (the server's default)."""
    request = urllib.request.Request(
        f"{lab.url}/bitfusion/api/info", headers={"Authorization": f"token {lab.token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        info = json.load(response)
    return next(
        str(spec["display_name"])
        for spec in info["kernelspecs"]
        if spec["name"] == info["default_kernelspec"]
    )


def _light_theme(page: Any) -> None:
    page.evaluate(
        "window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})"
    )
    page.locator('body[data-jp-theme-light="true"]').wait_for(state="attached", timeout=TIMEOUT_MS)


def _choose_percent(panel: Any, percent: int) -> None:
    panel.get_by_label("Share of each GPU in percent").fill(str(percent))
    panel.get_by_text(f"1x{percent}% · costs {percent} units").wait_for(timeout=TIMEOUT_MS)


def _run_in_notebook(page: Any, code: str, expected: str) -> None:
    """Type ``code`` into the open notebook's last cell, run it and wait for ``expected``.

    A cell run before the notebook's websocket reaches a just-started kernel is dropped (its
    prompt stays ``[ ]``) although the indicator already says idle: it is run again then."""
    notebook = page.locator(NOTEBOOK)
    cells = notebook.locator(".jp-CodeCell")
    cell = cells.nth(cells.count() - 1)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")
    output = notebook.locator(".jp-OutputArea-output").filter(has_text=expected).first
    for _ in range(3):
        try:
            output.wait_for(timeout=10_000)
            return
        except Exception:  # playwright's TimeoutError
            if "[ ]" not in cell.locator(".jp-InputPrompt").inner_text():
                continue  # it ran or is running: keep waiting
            cell.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Control+Enter")  # run it again, in place
    output.wait_for(timeout=TIMEOUT_MS)


def _stop_all(panel: Any) -> None:
    kernels = panel.locator(".jp-BfJupyter-kernel")
    while kernels.count():
        kernels.first.get_by_role("button", name="Stop").click()
        kernels.first.wait_for(state="detached", timeout=TIMEOUT_MS)
    panel.get_by_text("No GPU kernels are running.").wait_for(timeout=TIMEOUT_MS)


def test_a_new_notebook_on_a_quarter_gpu_runs_there_and_the_pool_shows_its_lease(
    page: Any, lab: Lab, artifacts: Path
) -> None:
    if not HAVE_PROVISIONER:
        pytest.skip("needs the bitfusion-local provisioner")
    # Given the sidebar, on a fresh workspace, and 1 GPU × 25 % chosen
    page.goto(f"{lab.url}/lab?reset&token={lab.token}")
    page.locator('li[data-id="bf-jupyter-gpu-slices"]').click(timeout=TIMEOUT_MS)
    panel = page.locator(PANEL)
    panel.get_by_text("Simulated V100-16GB").first.wait_for(timeout=TIMEOUT_MS)
    _light_theme(page)
    _choose_percent(panel, 25)
    # When the user asks for a new notebook on it
    panel.get_by_role("button", name="New notebook").click()
    # Then a notebook opens with the Bitfusion local kernel, once the start-up says ready
    panel.locator('.jp-BfJupyter-startup[data-state="ready"]').wait_for(timeout=TIMEOUT_MS)
    notebook = page.locator(NOTEBOOK)
    notebook.locator(".jp-Toolbar-kernelName").filter(has_text=_gpu_kernel_name(lab)).wait_for(
        timeout=TIMEOUT_MS
    )
    # and its code runs under bitfusion-sim on that slice
    _run_in_notebook(page, SHOW_SLICE, "slice 1x25%")
    # and while it runs, the pool shows its lease and the list shows the kernel with its notebook
    panel.locator(".jp-BfJupyter-gpu").filter(has_text="25 % used").wait_for(timeout=TIMEOUT_MS)
    listed = panel.locator(".jp-BfJupyter-kernel").filter(has_text="1x25%")
    listed.filter(has_text=".ipynb").wait_for(timeout=TIMEOUT_MS)
    panel.locator(".jp-BfJupyter-badge").filter(has_text="simulated").wait_for()
    panel.screenshot(path=str(artifacts / "sidebar-with-kernel.png"))
    # When it is stopped, then its lease is gone from the pool
    _stop_all(panel)
    panel.locator(".jp-BfJupyter-gpu").filter(has_text="25 % used").wait_for(
        state="detached", timeout=TIMEOUT_MS
    )


def test_switch_kernel_moves_the_open_notebooks_kernel_to_a_slice(page: Any, lab: Lab) -> None:
    if not HAVE_PROVISIONER:
        pytest.skip("needs the bitfusion-local provisioner")
    # Given a notebook open on a plain (CPU) Python kernel
    name = "switch-me.ipynb"
    (lab.root / name).write_text(json.dumps(_notebook([""])))
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    notebook = page.locator(NOTEBOOK)
    notebook.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        state="attached", timeout=TIMEOUT_MS
    )
    _run_in_notebook(page, SHOW_SLICE, "slice None")
    # When the user picks 1 GPU × 50 % and switches the notebook's kernel to it
    page.locator('li[data-id="bf-jupyter-gpu-slices"]').click(timeout=TIMEOUT_MS)
    panel = page.locator(PANEL)
    _choose_percent(panel, 50)
    panel.get_by_role("button", name="Switch kernel").click()
    panel.locator('.jp-BfJupyter-startup[data-state="ready"]').wait_for(timeout=TIMEOUT_MS)
    # Then the same notebook now runs on the slice, and the kernel is listed with it
    notebook.locator(".jp-Toolbar-kernelName").filter(has_text=_gpu_kernel_name(lab)).wait_for(
        timeout=TIMEOUT_MS
    )
    notebook.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        state="attached", timeout=TIMEOUT_MS
    )
    _run_in_notebook(page, SHOW_SLICE, "slice 1x50%")
    panel.locator(".jp-BfJupyter-kernel").filter(has_text="1x50%").filter(has_text=name).wait_for(
        timeout=TIMEOUT_MS
    )
    _stop_all(panel)


def _notebook(cells: list[str]) -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": c,
            }
            for c in cells
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
