"""Each way a kernel pod cannot start ends the launch with the cluster's own reason — right after the
event that says so, not at a timeout — and leaves no pod, Secret or lease."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.kernels.kubernetes.pod_builder import pod_name_for
from bf_jupyter.kernels.progress import PROGRESS
from bf_jupyter.kernels.sliced_kernel import KernelLaunchError
from tests.e2e.kernels.conftest import KernelspecFactory, kernel_objects, lease_slices

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

    from tests.support.cluster_handle import ClusterHandle

# A launch timeout no test waits for: a failure must come from the event, never from the clock.
NEVER = 3600


async def _failed_launch(
    manager: AsyncKernelManager, slice_text: str = "1x50%"
) -> tuple[str, list[str]]:
    with pytest.raises(KernelLaunchError) as caught:
        await manager.start_kernel(env={"BF_SLICE": slice_text})
    history = PROGRESS.history(str(manager.kernel_id))
    assert history[-1].stage == "failed"
    assert history[-1].message == str(caught.value)
    assert "did not answer within" not in str(caught.value)
    return str(caught.value), [event.stage for event in history]


def _event_reasons(cluster: ClusterHandle, namespace: str, manager: AsyncKernelManager) -> set[str]:
    """Reasons of the Kubernetes Events about the (deleted) first pod of the manager's kernel."""
    pod = pod_name_for(str(manager.kernel_id), 1)
    return {str(event.get("reason")) for event in cluster.events_for(namespace, pod)}


async def _assert_nothing_left(
    manager: AsyncKernelManager, cluster: ClusterHandle, namespace: str, stack: Any
) -> None:
    assert not manager.has_kernel
    assert kernel_objects(cluster, namespace) == []
    assert lease_slices(stack, namespace) == []


async def test_missing_image_fails_with_the_pull_error(
    cluster: ClusterHandle,
    namespace: str,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    manager = kernel_managers(
        kernelspecs(namespace, image="registry.invalid/bf-kernel:missing", launch_timeout=NEVER)
    )
    message, stages = await _failed_launch(manager)
    assert message.startswith(
        "The kernel image registry.invalid/bf-kernel:missing cannot be pulled ("
    )
    assert "ErrImagePull" in message or "ImagePullBackOff" in message
    assert stages[0] == "created" and "scheduled" in stages
    # the reason came from the kubelet's report, which the cluster also recorded as an Event
    assert "Failed" in _event_reasons(cluster, namespace, manager)
    await _assert_nothing_left(manager, cluster, namespace, bitfusion_stack)


async def test_unschedulable_pod_fails_with_the_scheduler_message(
    cluster: ClusterHandle,
    namespace: str,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    # No node has a thousand CPUs (the emulated scheduler fits resources, not node selectors).
    manager = kernel_managers(kernelspecs(namespace, cpu_request="1000", launch_timeout=NEVER))
    message, stages = await _failed_launch(manager)
    assert message.startswith("No node can run the kernel pod: 0/")
    assert stages == ["created", "failed"]
    assert "FailedScheduling" in _event_reasons(cluster, namespace, manager)
    await _assert_nothing_left(manager, cluster, namespace, bitfusion_stack)


async def test_container_exit_fails_with_its_last_words(
    cluster: ClusterHandle,
    namespace: str,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    argv = ["python", "-c", "import sys; sys.exit('kernel cannot start: e2e says so')"]
    manager = kernel_managers(kernelspecs(namespace, argv=argv, launch_timeout=NEVER))
    message, stages = await _failed_launch(manager)
    assert message.startswith(
        "The kernel container exited with code 1 (Error) before the kernel was ready"
    )
    assert message.endswith("kernel cannot start: e2e says so.")
    assert stages.index("started") < stages.index("failed")
    await _assert_nothing_left(manager, cluster, namespace, bitfusion_stack)


async def test_webhook_denial_fails_at_create_with_its_message(
    cluster: ClusterHandle,
    namespace: str,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    # The validating webhook refuses a slice larger than any node offers (3 × 100 units > 200).
    manager = kernel_managers(kernelspecs(namespace, launch_timeout=NEVER))
    message, stages = await _failed_launch(manager, "3x100%")
    assert message.startswith("Kubernetes refused the kernel pod: ")
    assert "denied the request" in message and "300" in message
    assert stages == ["failed"]
    await _assert_nothing_left(manager, cluster, namespace, bitfusion_stack)


async def test_a_slice_the_pool_cannot_serve_fails_with_the_client_reason(
    cluster: ClusterHandle,
    namespace: str,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    if bitfusion_stack is None:
        pytest.skip("the pool's size is the test cluster's")
    manager = kernel_managers(kernelspecs(namespace, launch_timeout=NEVER))
    message, stages = await _failed_launch(manager, "3x50%")
    assert "cannot serve 3 GPUs" in message
    assert stages.index("started") < stages.index("failed")
    await _assert_nothing_left(manager, cluster, namespace, bitfusion_stack)


async def test_quota_denial_fails_at_create_with_the_quota_message(
    cluster: ClusterHandle,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    namespace = cluster.create_namespace_with_quota({"requests.bitfusion.io/gpu": 40})
    try:
        manager = kernel_managers(kernelspecs(namespace, launch_timeout=NEVER))
        message, stages = await _failed_launch(manager, "1x50%")
        assert message.startswith("Kubernetes refused the kernel pod: ")
        assert "quota" in message.lower()
        assert stages == ["failed"]
        await _assert_nothing_left(manager, cluster, namespace, bitfusion_stack)
    finally:
        cluster.delete_namespace(namespace)
