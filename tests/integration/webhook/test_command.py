"""``bf-jupyter webhook`` as a user runs it: a process that serves, drains on SIGTERM and exits 0,
and that refuses bad input with one clear line instead of a traceback."""

from __future__ import annotations

import http.client
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bf_jupyter.cli import main

WEBHOOK = [sys.executable, "-m", "bf_jupyter", "webhook"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("certs")
    assert main(["certs", "--out", str(folder), "--extra-san", "127.0.0.1"]) == 0
    return folder


def test_the_webhook_command_serves_then_drains_and_exits_on_sigterm(tls: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*WEBHOOK, "--port", str(port), "--address", "127.0.0.1", "--tls-cert", str(tls / "tls.crt"),
         "--tls-key", str(tls / "tls.key"), "--no-cluster-checks", "--drain-seconds", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        deadline = time.monotonic() + 30
        while True:  # the process needs a moment to import and listen
            try:
                connection = http.client.HTTPSConnection(
                    "127.0.0.1", port, context=context, timeout=5
                )
                connection.request("GET", "/healthz")
                assert connection.getresponse().read() == b"ok\n"
                connection.close()
                break
            except ConnectionRefusedError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "serving admission webhooks" in output and "stopping" in output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--config", "/nonexistent/config.yaml"],
            "configuration /nonexistent/config.yaml cannot be read",
        ),
        (["--tls-key", "/nonexistent/tls.key"], "cannot load --tls-cert"),
    ],
)
def test_the_webhook_command_refuses_bad_files_in_one_line(
    tls: Path, extra: list[str], message: str
) -> None:
    command = [
        *WEBHOOK,
        "--port",
        "0",
        "--tls-cert",
        str(tls / "tls.crt"),
        "--tls-key",
        str(tls / "tls.key"),
        "--no-cluster-checks",
        *extra,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
