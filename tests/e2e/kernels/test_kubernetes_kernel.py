"""A notebook kernel in a pod on a GPU slice: it runs under the slice, interrupts, restarts, shuts
down, and leaves no pod, Secret or lease behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bf_jupyter.kernels.progress import PROGRESS
from tests.e2e.kernels.conftest import KernelspecFactory, kernel_objects, lease_slices, pod_of
from tests.support.kernel_session import collect_reply, execute, wait_for_output

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

    from tests.support.cluster_handle import ClusterHandle

PROVE_SLICE = (
    "import os; print(os.environ.get('BF_SIM_SLICE') or os.environ['BF_SLICE'], "
    "os.environ.get('BF_SIM_LEASE_ID', '-'), os.environ['KERNEL_ID'])"
)


async def _run(manager: AsyncKernelManager, code: str) -> str:
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        return (await execute(client, code)).stdout
    finally:
        client.stop_channels()


async def test_kernel_in_a_pod_round_trip_leaves_nothing_behind(
    cluster: ClusterHandle,
    namespace: str,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    manager = kernel_managers(kernelspecs(namespace))

    # given a kernel launched on the slice the launch chose
    await manager.start_kernel(env={"BF_SLICE": "1x50%"})
    kernel_id = str(manager.kernel_id)
    stages = [event.stage for event in PROGRESS.history(kernel_id)]
    assert stages[0] == "created" and stages[-1] == "ready"
    assert {"scheduled", "started"} <= set(stages)
    if bitfusion_stack is not None:
        assert "locked" in stages
    assert manager.provisioner is not None
    first_pod = pod_of(manager)

    # when it reports its environment, then it runs under the slice, with no key inherited
    slice_text, lease_id, seen_kernel_id = (await _run(manager, PROVE_SLICE)).split()
    assert slice_text == "1x50%"
    assert seen_kernel_id == kernel_id
    assert lease_slices(bitfusion_stack, namespace) == (
        ["1x50%"] if bitfusion_stack is not None else []
    )
    assert (
        await _run(manager, "import os; print('BF_KERNEL_KEY' in os.environ)")
    ).strip() == "False"

    # when interrupted during time.sleep, then the cell ends with KeyboardInterrupt
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        msg_id = client.execute("import time; print('sleeping', flush=True); time.sleep(120)")
        await wait_for_output(client, msg_id, "sleeping")
        await manager.interrupt_kernel()
        assert (await collect_reply(client, msg_id)).error == "KeyboardInterrupt"
    finally:
        client.stop_channels()

    # when restarted, then a fresh pod on a fresh lease replaces the old one
    await manager.restart_kernel()
    assert pod_of(manager) != first_pod
    _, new_lease, _ = (await _run(manager, PROVE_SLICE)).split()
    if bitfusion_stack is not None:
        assert new_lease != lease_id
        assert lease_slices(bitfusion_stack, namespace) == ["1x50%"]
    assert kernel_objects(cluster, namespace) == [
        f"pod/{pod_of(manager)}",
        f"secret/{pod_of(manager)}",
    ]

    # when shut down, then no pod, Secret or lease remains
    await manager.shutdown_kernel()
    assert kernel_objects(cluster, namespace) == []
    assert lease_slices(bitfusion_stack, namespace) == []
    assert not manager.has_kernel


async def test_kernel_pod_spec_holds_no_secret_and_no_server_environment(
    cluster: ClusterHandle,
    namespace: str,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("SERVER_ONLY_TOKEN", "do-not-leak")
    manager = kernel_managers(kernelspecs(namespace))
    import os

    await manager.start_kernel(env={**os.environ, "BF_SLICE": "1x25%", "KERNEL_USERNAME": "ada"})
    assert manager.provisioner is not None
    pod = cluster.api.get("Pod", pod_of(manager), namespace)
    text = str(pod)
    assert "do-not-leak" not in text
    assert manager.session.key.decode() not in text
    assert pod["metadata"]["labels"]["bf-jupyter/user"] == "ada"
    assert (
        await _run(manager, "import os; print(os.environ.get('SERVER_ONLY_TOKEN'))")
    ).strip() == "None"
    await manager.shutdown_kernel()
    assert kernel_objects(cluster, namespace) == []


async def test_encrypted_channels_between_server_and_pod(
    cluster: ClusterHandle,
    namespace: str,
    bitfusion_stack: Any,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[..., AsyncKernelManager],
) -> None:
    # given a server that requires CurveZMQ on kernel channels (jupyter_client's policy)
    manager = kernel_managers(kernelspecs(namespace), transport_encryption="required")
    await manager.start_kernel(env={"BF_SLICE": "1x25%"})
    pod = cluster.api.get("Pod", pod_of(manager), namespace)
    assert manager.curve_secretkey is not None
    assert manager.curve_secretkey.decode() not in str(pod)  # the keypair is in the Secret

    # then the kernel answers over encrypted channels only
    assert (await _run(manager, "print(6 * 7)")).strip() == "42"
    await manager.shutdown_kernel()
    assert kernel_objects(cluster, namespace) == []
    assert lease_slices(bitfusion_stack, namespace) == []
