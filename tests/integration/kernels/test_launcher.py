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

from bf_jupyter.kernels.kernel_channels import await_kernel_info, request_gpu_reading
from bf_jupyter.kernels.launcher import format_ports
from tests.support.kernel_session import execute, wait_for_output

ADDRESS = "127.0.0.61"
PORTS = {"shell": 53100, "iopub": 53101, "stdin": 53102, "control": 53103, "hb": 53104}


@pytest.fixture
def launcher_tmp(tmp_path: Path) -> Path:
    """The launcher's TMPDIR."""
    directory = tmp_path / "launcher-tmp"
    directory.mkdir()
    return directory


# NVML in the kernel pod: the stand-in, with this kernel process on a 16 GiB GPU.
FAKE_PYNVML = """
import os
from tests.support.fake_nvml import FakeGpu, FakeNvml
_nvml = FakeNvml([FakeGpu(total_mib=16384)])
_nvml.gpus[0].run(os.getpid(), 1234, sm_util=20)
globals().update({n: getattr(_nvml, n) for n in dir(_nvml) if n.startswith(("nvml", "NVML"))})
"""


@pytest.fixture
def launcher_env(launcher_tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BF_KERNEL_KEY": "launcher-test-key",
        "BF_KERNEL_IP": ADDRESS,
        "TMPDIR": str(launcher_tmp),
    }


@pytest.fixture
async def launched(
    launcher_env: dict[str, str],
) -> AsyncIterator[tuple[subprocess.Popen[bytes], Any]]:
    env = launcher_env
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


@pytest.fixture
def with_fake_nvml(launcher_env: dict[str, str], tmp_path: Path) -> None:
    stand_in = tmp_path / "nvml-stand-in"
    stand_in.mkdir()
    (stand_in / "pynvml.py").write_text(FAKE_PYNVML)
    root = Path(__file__).parents[3]
    launcher_env.update(PYTHONPATH=f"{stand_in}{os.pathsep}{root}", BF_SLICE="1x8Gi")


@pytest.mark.usefixtures("with_fake_nvml")
async def test_a_busy_pod_kernel_reports_its_gpu_on_the_control_channel(
    launched: tuple[subprocess.Popen[bytes], Any],
) -> None:
    _, info = launched
    client = AsyncKernelClient()
    client.load_connection_info(info)
    client.start_channels()
    try:
        msg_id = client.execute("import time; print('busy', flush=True); time.sleep(300)")
        await wait_for_output(client, msg_id, "busy")
        # When the server asks while a cell runs
        answer = await request_gpu_reading(info, timeout=30)
    finally:
        client.stop_channels()
    # Then the kernel answers with its own processes' use against its slice
    assert answer == {
        "gpu": {"memory_used_mib": 1234, "memory_limit_mib": 8192, "utilization_percent": 20,
                "idle_seconds": 0, "over_share": False}
    }  # fmt: skip


async def test_a_pod_kernel_without_nvml_says_no_gpu_reading(
    launched: tuple[subprocess.Popen[bytes], Any],
) -> None:
    _, info = launched

    assert await request_gpu_reading(info, timeout=30) == {"gpu": None}


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
