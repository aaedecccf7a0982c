"""Local Bitfusion kernels on the embedded pool: kernelspec, pool state and a kernel manager."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from jupyter_client.manager import AsyncKernelManager

from bf_jupyter.bitfusion.client import resolve_client
from bf_jupyter.kernels.kernelspecs import KernelspecRequest, install_kernelspec

if TYPE_CHECKING:
    from bf_jupyter.bitfusion.records import LeaseRecord

KERNEL_NAME = "bf-local-test"


@pytest.fixture
def sim_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private pool (two virtual 16 GiB GPUs) and the embedded client, unless one is configured."""
    home = tmp_path / "sim"
    monkeypatch.setenv("BF_SIM_HOME", str(home))
    monkeypatch.setenv("BF_SIM_POOL", "virtual")
    if not os.environ.get("BF_BITFUSION_BIN"):
        sim = shutil.which("bitfusion-sim") or str(Path(sys.executable).with_name("bitfusion-sim"))
        monkeypatch.setenv("BF_BITFUSION_BIN", sim)
    return home


def leases() -> list[LeaseRecord]:
    """The slices the pool holds now."""
    listing = resolve_client().list_gpus()
    return [lease for server in listing.servers for lease in server.leases]


@pytest.fixture
def local_kernelspec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    prefix = tmp_path / "prefix"
    install_kernelspec(KernelspecRequest(backend="local", name=KERNEL_NAME), prefix=str(prefix))
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    return KERNEL_NAME


@pytest.fixture
async def kernel_manager(
    sim_home: Path, local_kernelspec: str
) -> AsyncIterator[AsyncKernelManager]:
    manager = AsyncKernelManager(kernel_name=local_kernelspec)
    try:
        yield manager
    finally:
        if manager.has_kernel:
            await manager.shutdown_kernel(now=True)
