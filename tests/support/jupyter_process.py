"""A Jupyter server in a child process, started the way a user starts one, for the browser tests
and the benchmarks that need a whole server.

``running_server(command, home=..., env=...)`` runs ``command`` (``bf-jupyter lab ...``,
``python -m jupyterlab``, ``jupyter server``) on 127.0.0.1 with a free port, a random token and
``home/root`` as its root directory, waits until ``/api/status`` answers, yields a ``Lab`` and stops
the server at the end. It is stopped with SIGTERM: jupyter-server then shuts its kernels down and
exits (SIGINT does so only with a terminal to confirm on, and is ignored where the run was started
in the background).
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Lab:
    """A running server: where it answers, its token, its root directory and its log file."""

    url: str  # http://127.0.0.1:PORT
    token: str
    root: Path
    log: Path

    def page_url(self, path: str = "lab") -> str:
        return f"{self.url}/{path}?token={self.token}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def disable_announcements(config_dir: Path) -> None:
    """Switch JupyterLab's first-run "news" toast off: it would cover the page, and no network is
    wanted anyway."""
    (config_dir / "labconfig").mkdir(parents=True, exist_ok=True)
    (config_dir / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )


@contextmanager
def running_server(
    command: Sequence[str],
    *,
    home: Path,
    env: Mapping[str, str],
    options: Sequence[str] = (),
    start_timeout: float = START_TIMEOUT,
) -> Iterator[Lab]:
    """Start ``command`` with the network, token and root options and then ``options``; yield it
    once it answers; stop it. Its output goes to ``home/server.log``."""
    root = home / "root"
    root.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    argv = [
        *command, "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", *options,
    ]  # fmt: skip
    lab = Lab(f"http://127.0.0.1:{port}", token, root, home / "server.log")
    with lab.log.open("wb") as sink:
        process = subprocess.Popen(
            argv, env=dict(env), stdout=sink, stderr=subprocess.STDOUT, cwd=root
        )
    try:
        _wait_until_serving(lab, process, start_timeout)
        yield lab
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(lab: Lab, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        f"{lab.url}/api/status", headers={"Authorization": f"token {lab.token}"}
    )
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited with {process.returncode}:\n{lab.log.read_text()[-4000:]}"
            )
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)  # the port is not open yet; nothing to await but the server itself
    raise TimeoutError(
        f"the server did not answer within {timeout:g} s:\n{lab.log.read_text()[-4000:]}"
    )
