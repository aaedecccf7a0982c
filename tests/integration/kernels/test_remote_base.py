"""The remote-provisioner base is backend-agnostic: a leaf that runs the in-pod launcher as a local
process gets readiness, interrupts, shutdown and fail-fast from the base alone."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncGenerator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import AsyncKernelManager

from bf_jupyter.kernels.launcher import format_ports
from bf_jupyter.kernels.progress import PROGRESS
from bf_jupyter.kernels.remote import RemoteKernelProvisioner
from bf_jupyter.kernels.remote_start import Address, Progress, RemoteStart, RemoteStartFailure
from bf_jupyter.kernels.sliced_kernel import KernelLaunchError
from tests.support.kernel_session import collect_reply, execute, wait_for_output

# The launcher binds the kernel's fixed ports on this address, as a pod does on its own IP; a random
# loopback address keeps test runs that happen at the same time on one machine apart.
ADDRESS = f"127.{secrets.randbelow(64) + 64}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


class ProcessRemote(RemoteKernelProvisioner):
    """A 'remote' kernel that is a local launcher process; ``fail_with`` makes the start fail."""

    fail_with: str | None = None
    calls: list[str]

    async def create_remote(self, start: RemoteStart) -> None:
        self.calls = ["create"]
        env = {**os.environ, "BF_KERNEL_KEY": start.key.decode(), "BF_KERNEL_IP": ADDRESS}
        for field, value in (start.curve_keys or {}).items():
            env[f"BF_KERNEL_{field.upper()}"] = value.decode()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bf_jupyter.kernels.launcher",
                "--ports",
                format_ports(start.ports),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.publish("created", f"process {self.process.pid}")

    async def watch_start(self) -> AsyncGenerator[Progress | Address, None]:
        yield Progress("started", "process running")
        if self.fail_with:
            raise RemoteStartFailure(self.fail_with)
        yield Address(ADDRESS)
        await asyncio.Event().wait()  # nothing more to report; the base closes us when ready

    async def follow_remote(self) -> int:
        return await asyncio.to_thread(self.process.wait)

    async def stop_remote(self, *, grace_seconds: int) -> None:
        self.calls.append(f"stop {grace_seconds}")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM if grace_seconds > 1 else signal.SIGKILL)

    async def release_remote(self) -> None:
        self.calls.append(f"release after {PROGRESS.history(str(self.kernel_id))[-1].stage}")
        if self.process.poll() is None:
            self.process.kill()
        await asyncio.to_thread(self.process.wait)

    def remote_info(self) -> dict[str, Any]:
        return {"pid": self.process.pid}

    def restore_remote(self, info: Mapping[str, Any]) -> None:
        raise NotImplementedError


@pytest.fixture
def process_kernelspec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    directory = tmp_path / "kernels" / "process-remote"
    directory.mkdir(parents=True)
    spec = {
        "argv": ["python", "-m", "bf_jupyter.kernels.launcher"],
        "display_name": "process remote",
        "language": "python",
        "interrupt_mode": "signal",  # so that interrupts go through the provisioner's send_signal
        "metadata": {
            "supported_encryption": ["curve"],
            "kernel_provisioner": {"provisioner_name": "local-provisioner", "config": {}},
        },
    }
    (directory / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    yield "process-remote"


async def _manager(
    kernel_name: str, *, encryption: str = "disabled", **traits: Any
) -> tuple[AsyncKernelManager, ProcessRemote]:
    manager = AsyncKernelManager(kernel_name=kernel_name, transport_encryption=encryption)
    manager.kernel_id = f"process-remote-{os.urandom(4).hex()}"
    provisioner = ProcessRemote(
        kernel_id=manager.kernel_id,
        kernel_spec=manager.kernel_spec,
        parent=manager,
        port_base=53200,
        **traits,
    )
    manager.provisioner = provisioner
    return manager, provisioner


async def test_base_gives_readiness_interrupt_and_shutdown(process_kernelspec: str) -> None:
    manager, provisioner = await _manager(process_kernelspec)
    await manager.start_kernel(env={"BF_SLICE": "1x25%"})
    stages = [event.stage for event in PROGRESS.history(str(manager.kernel_id))]
    assert stages == ["created", "started", "ready"]
    assert provisioner.gpu_slice is not None and provisioner.gpu_slice.to_text() == "1x25%"

    client = manager.client()
    client.start_channels()
    try:
        msg_id = client.execute("import time; print('sleeping', flush=True); time.sleep(120)")
        await wait_for_output(client, msg_id, "sleeping")
        await manager.interrupt_kernel()  # SIGINT → an interrupt_request on the control channel
        assert (await collect_reply(client, msg_id)).error == "KeyboardInterrupt"
    finally:
        client.stop_channels()

    await manager.shutdown_kernel()
    assert provisioner.process.poll() is not None
    assert not manager.has_kernel


async def test_a_failed_start_says_why_before_it_cleans_up(process_kernelspec: str) -> None:
    manager, provisioner = await _manager(process_kernelspec)
    provisioner.fail_with = "The backend says no."
    with pytest.raises(KernelLaunchError, match="The backend says no"):
        await manager.start_kernel()
    assert provisioner.calls == ["create", "release after failed"]
    assert provisioner.process.poll() is not None
    assert not manager.has_kernel


async def test_required_transport_encryption_gives_the_kernel_a_curve_keypair(
    process_kernelspec: str,
) -> None:
    manager, provisioner = await _manager(process_kernelspec, encryption="required")
    await manager.start_kernel()
    try:
        info = provisioner.connection_info
        assert info.get("curve_publickey") and info.get("curve_secretkey")
        client = manager.client()
        client.start_channels()
        try:
            result = await execute(client, "print(6 * 7)")
        finally:
            client.stop_channels()
        assert result.stdout.strip() == "42"
    finally:
        await manager.shutdown_kernel()
