"""With the recommended culling settings, an idle kernel is shut down even with a tab connected, and
its GPU slice is released."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bf_jupyter.server.culling import RECOMMENDED_CULLING, culling_config
from tests.integration.kernels.conftest import leases


def test_recommendation_culls_connected_idle_kernels_and_spares_busy_ones() -> None:
    config = culling_config()
    assert config.MappingKernelManager.cull_connected is True
    assert config.MappingKernelManager.cull_busy is False
    assert (
        config.MappingKernelManager.cull_idle_timeout
        == RECOMMENDED_CULLING["cull_idle_timeout"]
        > 0
    )


async def test_idle_connected_kernel_is_culled_and_its_lease_released(
    sim_home: Path, local_kernelspec: str, tmp_path: Path
) -> None:
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    # given a server with the recommended culling (shortened), and a kernel a browser tab holds
    manager: Any = AsyncMappingKernelManager(  # type: ignore[no-untyped-call]
        root_dir=str(tmp_path), config=culling_config(cull_idle_timeout=1, cull_interval=1)
    )
    culled = asyncio.Event()
    shutdown = manager.shutdown_kernel

    async def record_cull(kernel_id: str, *args: Any, **kwargs: Any) -> None:
        await shutdown(kernel_id, *args, **kwargs)
        culled.set()

    manager.shutdown_kernel = record_cull
    kernel_id = await manager.start_kernel(kernel_name=local_kernelspec)
    await manager.get_kernel(kernel_id).ready
    manager.notify_connect(kernel_id)
    assert len(leases()) == 1
    try:
        # when it stays idle, then the culler shuts it down and the slice is free again
        await asyncio.wait_for(culled.wait(), timeout=60)
        assert kernel_id not in manager.list_kernel_ids()
        assert leases() == []
    finally:
        await manager.shutdown_all()
