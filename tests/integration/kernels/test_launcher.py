"""The in-pod launcher as a process: binds the given address and ports with the key from its
environment, loads the %bitfusion magic, hides the key from user code, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient

from bf_jupyter.kernels.kernel_channels import await_kernel_info
from bf_jupyter.kernels.launcher import format_ports
from tests.integration.kernels.session import execute, wait_for_output

ADDRESS = "127.0.0.61"
PORTS = {"shell": 53100, "iopub": 53101, "stdin": 53102, "control": 53103, "hb": 53104}


@pytest.fixture
def launcher_tmp(tmp_path: Path) -> Path:
    """The launcher's TMPDIR."""
    directory = tmp_path / "launcher-tmp"
    directory.mkdir()
    return directory


@pytest.fixture
async def launched(launcher_tmp: Path) -> AsyncIterator[tuple[subprocess.Popen[bytes], Any]]:
    env = {
        **os.environ,
        "BF_KERNEL_KEY": "launcher-test-key",
        "BF_KERNEL_IP": ADDRESS,
        "TMPDIR": str(launcher_tmp),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bf_jupyter.kernels.launcher", "--ports", format_ports(PORTS)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    info: Any = {
        "ip": ADDRESS,
        "transport": "tcp",
        "key": b"launcher-test-key",
        "signature_scheme": "hmac-sha256",
        **{f"{name}_port": port for name, port in PORTS.items()},
    }
    try:
        await asyncio.wait_for(await_kernel_info(info), 60)
        yield process, info
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def test_launcher_serves_a_kernel_with_the_magic_and_without_the_key(
    launched: tuple[subprocess.Popen[bytes], Any],
) -> None:
    _, info = launched
    client = AsyncKernelClient()
    client.load_connection_info(info)
    client.start_channels()
    try:
        result = await execute(
            client,
            "import os; print('BF_KERNEL_KEY' in os.environ, "
            "'bitfusion' in get_ipython().magics_manager.magics['line'])",
        )
    finally:
        client.stop_channels()
    assert result.stdout.split() == ["False", "True"]


async def test_sigterm_stops_a_busy_kernel_cleanly(
    launched: tuple[subprocess.Popen[bytes], Any],
) -> None:
    process, info = launched
    client = AsyncKernelClient()
    client.load_connection_info(info)
    client.start_channels()
    try:
        msg_id = client.execute("import time; print('busy', flush=True); time.sleep(300)")
        await wait_for_output(client, msg_id, "busy")
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
    finally:
        client.stop_channels()
    assert code == 0


async def test_connection_file_is_gone_once_the_kernel_listens(
    launched: tuple[subprocess.Popen[bytes], Any], launcher_tmp: Path
) -> None:
    # the launcher's private directory held the key only until the kernel had bound its sockets,
    # so even a SIGKILL now leaves nothing behind
    assert list(launcher_tmp.iterdir()) == []
