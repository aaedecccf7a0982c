"""Requests per minute that one open JupyterLab tab's GPU slices sidebar makes at rest.

Starts ``bf-jupyter lab --backend local``, opens a real tab in Debian's chromium (Playwright),
opens the sidebar, lets the first load settle, then counts every request to
``/bitfusion/api/`` for ``--seconds`` (at least 60) with the sidebar open, and again with the
sidebar collapsed (polling stands by). JupyterLab's own ``/api/`` requests are counted too, for
comparison. Target: <= 12 requests/minute/tab for the sidebar.

    .venv/bin/python benchmarks/sidebar_requests.py [--seconds 60] [--stand-in-pool]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_session import running_lab

SETTLE_SECONDS = 5.0
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--stand-in-pool", action="store_true")
    args = parser.parse_args()
    seconds = max(60.0, args.seconds)
    from playwright.sync_api import sync_playwright

    with running_lab(stand_in_pool=args.stand_in_pool) as lab, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            seen: list[str] = []
            page.on("request", lambda request: seen.append(request.url))
            page.goto(f"{lab.url}/lab?token={lab.token}")
            tab = page.locator('li[data-id="bf-jupyter-gpu-slices"]')
            tab.click(timeout=60_000)
            page.locator(".jp-BfJupyter-panel .jp-BfJupyter-gpu").first.wait_for(timeout=60_000)
            for label in ("sidebar open", "sidebar collapsed"):
                page.wait_for_timeout(SETTLE_SECONDS * 1000)
                start = len(seen)
                began = time.monotonic()
                page.wait_for_timeout(seconds * 1000)
                elapsed = time.monotonic() - began
                window = seen[start:]
                ours = sum("/bitfusion/api/" in url for url in window)
                lab_api = sum("/api/" in url and "/bitfusion/api/" not in url for url in window)
                print(
                    f"{label:<18} {elapsed:5.1f} s: bf-jupyter {ours} requests = "
                    f"{ours * 60 / elapsed:5.2f}/min/tab; JupyterLab's own /api/: "
                    f"{lab_api * 60 / elapsed:5.2f}/min"
                )
                tab.click()  # collapse the sidebar for the second measurement
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
