"""A local kernel on a GPU slice: it runs under the slice, interrupts, restarts, and never leaks a lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bf_jupyter.kernels.progress import PROGRESS
from bf_jupyter.kernels.sliced_kernel import KernelLaunchError
from tests.integration.kernels.conftest import leases
from tests.support.kernel_session import collect_reply, execute, wait_for_output

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

PROVE_SLICE = (
    "import os; print(os.environ['BF_SIM_SLICE'], os.environ['BF_SIM_LEASE_ID'], os.getpid())"
)


def _stages(kernel_id: str) -> list[str]:
    return [event.stage for event in PROGRESS.history(kernel_id)]


async def test_local_kernel_round_trip_leaves_no_lease(kernel_manager: AsyncKernelManager) -> None:
    # given a kernel started on the slice the launch asked for
    await kernel_manager.start_kernel(env={**os.environ, "BF_SLICE": "1x25%"})
    kernel_id = str(kernel_manager.kernel_id)
    assert _stages(kernel_id) == ["created", "locked", "ready"]
    client = kernel_manager.client()
    client.start_channels()
    try:
        # when it reports its environment, then it runs under that slice's lease
        slice_text, lease_id, _ = (await execute(client, PROVE_SLICE)).stdout.split()
        assert slice_text == "1x25%"
        assert [(lease.lease_id, lease.slice_text) for lease in leases()] == [(lease_id, "1x25%")]

        # when interrupted in time.sleep, then the cell ends with KeyboardInterrupt
        msg_id = client.execute("import time; print('sleeping', flush=True); time.sleep(120)")
        await wait_for_output(client, msg_id, "sleeping")
        await kernel_manager.interrupt_kernel()
        interrupted = await collect_reply(client, msg_id)
        assert interrupted.error == "KeyboardInterrupt"

        # when restarted, then a fresh lease replaces the old one
        await kernel_manager.restart_kernel()
        await client.wait_for_ready(timeout=60)
        _, new_lease, _ = (await execute(client, PROVE_SLICE)).stdout.split()
        assert new_lease != lease_id
        assert [lease.lease_id for lease in leases()] == [new_lease]
    finally:
        client.stop_channels()

    # when shut down, then no lease and no process remain
    await kernel_manager.shutdown_kernel()
    assert leases() == []
    assert not kernel_manager.has_kernel


async def test_sigkill_of_the_kernel_releases_its_lease(kernel_manager: AsyncKernelManager) -> None:
    await kernel_manager.start_kernel()
    client = kernel_manager.client()
    client.start_channels()
    try:
        _, _, pid = (await execute(client, PROVE_SLICE)).stdout.split()
    finally:
        client.stop_channels()
    assert len(leases()) == 1

    os.kill(int(pid), signal.SIGKILL)
    assert kernel_manager.provisioner is not None
    await kernel_manager.provisioner.wait()  # the client exits once it released the slice

    assert leases() == []


SERVER = """
import asyncio, os, sys
from jupyter_client.manager import AsyncKernelManager

async def main():
    manager = AsyncKernelManager(kernel_name=sys.argv[1])
    await manager.start_kernel(env={**os.environ, "BF_SLICE": "1x25%"})
    print(manager.provisioner.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_a_killed_servers_kernel_ends_and_releases_its_lease(
    sim_home: Path, local_kernelspec: str
) -> None:
    import psutil

    # given a server process holding a local kernel on a slice
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, local_kernelspec], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        client = psutil.Process(int(server.stdout.readline()))
        kernel = client.children()
        assert [lease.slice_text for lease in leases()] == ["1x25%"]
    finally:
        # when the server is killed, with no chance to shut its kernels down
        server.kill()
        server.wait()
    # then the Bitfusion client is told, stops the kernel and releases the slice
    _, alive = psutil.wait_procs([client, *kernel], timeout=60)
    assert alive == []
    assert leases() == []


async def test_a_slice_the_pool_cannot_serve_fails_with_the_client_reason(
    kernel_manager: AsyncKernelManager,
) -> None:
    with pytest.raises(KernelLaunchError) as caught:
        await kernel_manager.start_kernel(env={**os.environ, "BF_SLICE": "9x50%"})
    assert "cannot serve 9 GPUs" in str(caught.value)
    history = PROGRESS.history(str(kernel_manager.kernel_id))
    assert [event.stage for event in history] == ["created", "failed"]
    assert history[-1].message == str(caught.value)
    assert leases() == []
    assert not kernel_manager.has_kernel


async def test_a_malformed_slice_is_refused_before_anything_starts(
    kernel_manager: AsyncKernelManager,
) -> None:
    with pytest.raises(KernelLaunchError, match="BF_SLICE was refused: gpu-amount"):
        await kernel_manager.start_kernel(env={**os.environ, "BF_SLICE": "0x50%"})
    assert _stages(str(kernel_manager.kernel_id)) == ["failed"]
    assert not kernel_manager.has_kernel
