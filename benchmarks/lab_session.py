"""A JupyterLab (or bare jupyter-server) with bf-jupyter on 127.0.0.1, for the benchmarks here.

Started as a user would (``bf-jupyter lab --backend local`` or ``jupyter server``), with a token,
in a throw-away home; stopped with SIGTERM so it shuts its kernels down. ``stand_in_pool`` points
``$BF_BITFUSION_BIN`` at a tiny script that prints a fixed ``list_gpus`` listing, for machines where
neither a real client nor ``bitfusion-sim`` is installed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LISTING = """\
 - server 0 [127.0.0.1:56001] (simulated): running 0 tasks
   |- GPU 0: free memory 16384 MiB / 16384 MiB (Simulated V100-16GB)
   |- GPU 1: free memory 8192 MiB / 16384 MiB (Simulated V100-16GB)
 - server 1 [127.0.0.2:56001] (simulated): running 0 tasks
   |- GPU 0: free memory 16384 MiB / 16384 MiB (Simulated V100-16GB)
"""


@dataclass(frozen=True)
class Session:
    url: str
    token: str
    log: Path


@contextmanager
def running_lab(
    *,
    server_only: bool = False,
    stand_in_pool: bool = False,
    extension: dict[str, object] | None = None,
    backend: str = "local",
    env_extra: dict[str, str] | None = None,
) -> Iterator[Session]:
    """Start the server, wait until it answers, yield it, stop it."""
    with tempfile.TemporaryDirectory(prefix="bf-bench-") as folder:
        home = Path(folder)
        (home / "root").mkdir()
        (home / "config").mkdir()
        (home / "config" / "jupyter_server_config.json").write_text(
            json.dumps({"BitfusionExtension": extension or {}})
        )
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "HOME": str(home)}
        env |= env_extra or {}
        if stand_in_pool:
            client = home / "bitfusion-stand-in"
            client.write_text(f"#!{sys.executable}\nprint({LISTING!r}, end='')\n")
            client.chmod(0o755)
            env["BF_BITFUSION_BIN"] = str(client)
        token, port = secrets.token_hex(16), _free_port()
        bin_dir = Path(sys.executable).parent
        command = (
            [str(bin_dir / "jupyter"), "server"]
            if server_only
            else [str(bin_dir / "bf-jupyter"), "lab", "--backend", backend]
        )
        argv = [
            *command, "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={home / 'root'}", f"--BitfusionExtension.backend={backend}",
        ]  # fmt: skip
        log = home / "server.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(url, token, process, log)
            yield Session(url, token, log)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, token: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    request = urllib.request.Request(
        f"{url}/api/status", headers={"Authorization": f"token {token}"}
    )
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise TimeoutError(f"the server did not answer within 90 s:\n{log.read_text()}")
