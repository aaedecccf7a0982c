"""Browser-test fixtures, shared by every UI test: JupyterLab and Debian's chromium.

* ``lab`` — JupyterLab (this environment's, with every installed extension) on 127.0.0.1, a random
  port and a random token, ``--allow-root``, settings and workspaces in a temporary directory, the
  news/update checks and their first-run toast switched off (no network). Stopped at the end.
* ``browser`` (per module) — ``/usr/bin/chromium`` driven by Playwright's sync API, headless,
  sandbox off, no background networking. Playwright never downloads a browser here.
* ``page`` — a fresh page of ``viewport`` size; a failed test keeps its screenshot (and, with a
  ``lab``, the server's log) under ``artifacts/ui/``; ``open_notebook(page, lab, name, cells)`` writes a notebook into the
  Lab's root directory and opens it once its kernel is idle; ``run_all(page)`` runs its cells.
* ``ARTIFACTS`` — ``artifacts/ui/`` at the repository root, where screenshots go.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.jupyter_process import Lab, disable_announcements, running_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "ui"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("lab")
    disable_announcements(home / "config")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    options = [
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=",
    ]
    with running_server(
        [sys.executable, "-m", "jupyterlab"], home=home, env=env, options=options
    ) as lab:
        yield lab


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped on purpose: Playwright's sync API keeps an asyncio loop marked as running in
    this thread while it is open, which would break every async test that runs after it."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)  # the page fixture reads it to keep evidence
    return report


@pytest.fixture
def viewport() -> dict[str, int]:
    """The browser page's size (a suite may override it)."""
    return {"width": 1400, "height": 1000}


@pytest.fixture
def page(browser: Any, viewport: dict[str, int], request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; when the test fails, its screenshot and, where the test runs a ``lab``, the
    server's log land in artifacts/ui/failed-<test>.png/.log, to show what the user saw."""
    context = browser.new_context(viewport=viewport)
    tab = context.new_page()
    try:
        yield tab
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"))
            if "lab" in request.fixturenames:
                lab: Lab = request.getfixturevalue("lab")
                (ARTIFACTS / f"failed-{request.node.name}.log").write_text(lab.log.read_text())
        context.close()


def open_notebook(page: Any, lab: Lab, name: str, cells: Sequence[str]) -> None:
    """Write ``name`` with ``cells`` into the Lab's root and open it with an idle kernel."""
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for source in cells
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (lab.root / name).write_text(json.dumps(notebook))
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")  # reset: only this notebook
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Cell").first.wait_for(timeout=60_000)
    # The kernel indicator says "idle" once this notebook's kernel is connected: cells run
    # before that are dropped.
    panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        state="attached", timeout=60_000
    )


def run_all(page: Any) -> None:
    """Run every cell of the open notebook, one Shift+Enter each from the first, and wait until
    the first one has started (pressing again if the kernel was not listening yet)."""
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")
    prompt = cells.first.locator(".jp-InputPrompt")
    started = prompt.filter(has_text="[*]").or_(prompt.filter(has_text="[1]"))
    for _ in range(3):
        prompt.click()
        for _ in range(cells.count()):
            page.keyboard.press("Shift+Enter")
        try:
            started.wait_for(timeout=10_000)
            return
        except Exception:  # playwright's TimeoutError: the kernel was not ready, try again
            continue
    started.wait_for(timeout=10_000)
