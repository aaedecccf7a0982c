"""Kernels and their server: concurrent launches against a quota, reattaching after a server
restart, reaping what a dead server left, and going with the server's pod."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jupyter_client.manager import AsyncKernelManager

from bf_jupyter.kernels.kubernetes.reaper import KernelReaper
from bf_jupyter.kernels.sliced_kernel import KernelLaunchError
from bf_jupyter.server.reattach import reattach_kernel
from tests.e2e.kernels.conftest import KernelspecFactory, kernel_objects, lease_slices, pod_of
from tests.support.kernel_session import execute

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle


async def _run(manager: AsyncKernelManager, code: str) -> str:
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        return (await execute(client, code)).stdout.strip()
    finally:
        client.stop_channels()


async def _server_dies(manager: AsyncKernelManager) -> None:
    """What a server process that dies leaves: the kernel pod keeps running, nobody follows it."""
    provisioner: Any = manager.provisioner
    task = provisioner._follow_task
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    manager._close_control_socket()


async def test_ten_concurrent_launches_against_a_200_unit_quota_start_exactly_four(
    cluster: ClusterHandle,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    namespace = cluster.create_namespace_with_quota({"requests.bitfusion.io/gpu": 200})
    try:
        name = kernelspecs(namespace)
        managers = [kernel_managers(name) for _ in range(10)]
        results = await asyncio.gather(
            *(m.start_kernel(env={"BF_SLICE": "1x50%"}) for m in managers), return_exceptions=True
        )
        started = [m for m, result in zip(managers, results, strict=True) if result is None]
        refused = [str(r) for r in results if isinstance(r, KernelLaunchError)]
        assert len(started) == 4, results
        assert len(refused) == 6, results
        assert all("quota" in message.lower() for message in refused), refused
        assert sorted(lease_slices(bitfusion_stack, namespace)) == (
            ["1x50%"] * 4 if bitfusion_stack is not None else []
        )
        await asyncio.gather(*(m.shutdown_kernel() for m in started))
        assert kernel_objects(cluster, namespace) == []
        assert lease_slices(bitfusion_stack, namespace) == []
    finally:
        cluster.delete_namespace(namespace)


async def test_a_restarted_server_reattaches_to_its_kernel(
    cluster: ClusterHandle,
    namespace: str,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    name = kernelspecs(namespace)
    first = AsyncKernelManager(kernel_name=name)
    await first.start_kernel(env={"BF_SLICE": "1x25%"})
    await _run(first, "marker = 'still here'")
    assert first.provisioner is not None
    stored = json.loads(json.dumps(await first.provisioner.get_provisioner_info()))
    assert stored["gpu_slice"] == "1x25%" and stored["pod_name"] == pod_of(first)
    await _server_dies(first)

    second = kernel_managers(name)
    await reattach_kernel(second, stored)

    assert await second.is_alive()
    assert await _run(second, "print(marker)") == "still here"
    assert second.provisioner is not None
    assert getattr(second.provisioner, "gpu_slice", None) is not None
    await second.shutdown_kernel()
    assert kernel_objects(cluster, namespace) == []
    assert lease_slices(bitfusion_stack, namespace) == []


async def test_first_launch_of_a_new_server_reaps_the_kernels_it_does_not_know(
    cluster: ClusterHandle,
    namespace: str,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    name = kernelspecs(namespace, reap_orphans=True)
    orphaned = AsyncKernelManager(kernel_name=name)
    await orphaned.start_kernel()
    assert orphaned.provisioner is not None
    orphan_pod = pod_of(orphaned)
    await _server_dies(orphaned)
    KernelReaper.start_over()  # a new server process: it never knew that kernel

    fresh = kernel_managers(name)
    await fresh.start_kernel()
    cluster.wait_for_pod_gone(namespace, orphan_pod)

    assert fresh.provisioner is not None
    remaining = kernel_objects(cluster, namespace)
    assert remaining == [
        f"pod/{pod_of(fresh)}",
        f"secret/{pod_of(fresh)}",
    ]
    await fresh.shutdown_kernel()
    assert lease_slices(bitfusion_stack, namespace) == []


async def test_kernel_pods_go_with_the_server_pod_that_owns_them(
    cluster: ClusterHandle,
    namespace: str,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    server_pod = {
        "metadata": {"name": "jupyter-server"},
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "image": "bf-jupyter/server:e2e",
                    "command": ["python", "-c", "import time; time.sleep(3600)"],
                }
            ]
        },
    }
    server = cluster.api.create("Pod", server_pod, namespace)
    manager = kernel_managers(kernelspecs(namespace, server_pod_name="jupyter-server"))
    await manager.start_kernel()
    assert manager.provisioner is not None
    kernel_pod = pod_of(manager)
    owners = cluster.api.get("Pod", kernel_pod, namespace)["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
        ("Pod", "jupyter-server", server["metadata"]["uid"])
    ]

    cluster.api.delete("Pod", "jupyter-server", namespace)
    cluster.wait_for_pod_gone(namespace, "jupyter-server")
    cluster.wait_for_pod_gone(namespace, kernel_pod)
    assert manager.provisioner is not None
    await manager.provisioner.wait()  # the provisioner saw its pod go

    assert kernel_objects(cluster, namespace) == []
    assert lease_slices(bitfusion_stack, namespace) == []
