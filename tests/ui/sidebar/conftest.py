"""JupyterLab with bf-jupyter, started by ``bf-jupyter lab --backend local`` on 127.0.0.1 with a
token, and Debian's chromium driven by Playwright (never a downloaded browser).

The pool is bitfusion-sim's (two virtual servers of two 16 GiB GPUs). Kernels run under the
bitfusion-local provisioner when it is installed; until then the plain python3 kernelspec stands in.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parents[3] / "artifacts" / "ui"
_START_TIMEOUT = 90.0
HAVE_PROVISIONER = any(
    ep.name == "bitfusion-local" for ep in entry_points(group="jupyter_client.kernel_provisioners")
)


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    root: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(url: str, token: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    request = urllib.request.Request(
        f"{url}/api/status", headers={"Authorization": f"token {token}"}
    )
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)  # the port is not open yet; nothing to await but the server itself
    raise TimeoutError(f"JupyterLab did not answer within {_START_TIMEOUT:g} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A JupyterLab server with the extension on the local backend (pool: see the module doc)."""
    home = tmp_path_factory.mktemp("lab")
    root, config, data = home / "root", home / "config", home / "data"
    for folder in (root, config, data):
        folder.mkdir(parents=True)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "HOME": str(home),
    }
    extension: dict[str, object] = {"local_quota_units": 150}
    spec: dict[str, object] = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (GPU slice)",
        "language": "python",
    }
    env.pop("BF_BITFUSION_BIN", None)
    env |= {"BF_SIM_HOME": str(home / "sim"), "BF_SIM_POOL": "virtual", "BF_SIM_SERVERS": "2"}
    env["BF_SIM_GPU_NAME"] = "Simulated V100-16GB"
    if HAVE_PROVISIONER:
        spec["metadata"] = {"kernel_provisioner": {"provisioner_name": "bitfusion-local"}}
        spec_name = "bitfusion-local"
    else:
        extension["kernelspecs"] = ["python3"]
        spec_name = "python3"
    (data / "kernels" / spec_name).mkdir(parents=True)
    (data / "kernels" / spec_name / "kernel.json").write_text(json.dumps(spec))
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"BitfusionExtension": extension})
    )
    token, port = secrets.token_hex(16), _free_port()
    argv = [
        str(Path(sys.executable).with_name("bf-jupyter")), "lab", "--backend", "local",
        "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={home / 'settings'}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True", "--ServerApp.log_level=INFO",
    ]  # fmt: skip
    log = home / "lab.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, token, process, log)
        yield Lab(url, token, root, log)
    finally:
        # SIGTERM: jupyter-server shuts its kernels down, then exits. SIGINT does so only with a
        # terminal to confirm on, and is ignored where the test run was started in the background.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run",
            ],
        )  # fmt: skip
        try:
            yield instance
        finally:
            instance.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)  # the page fixture reads it to keep evidence
    return report


@pytest.fixture
def page(browser: Any, lab: Lab, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page; when the test fails, its screenshot and the server log are kept
    under artifacts/ui/ to show what the user would have seen."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"))
            (ARTIFACTS / f"failed-{request.node.name}.log").write_text(lab.log.read_text())
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
