"""A notebook kernel on a slice of each GPU-sharing stack other than Bitfusion: HAMi, NVIDIA's device
plugin with MIG, and its shared replicas (time-slicing, MPS renamed to ``nvidia.com/gpu.shared``).

A second process-kubelet node, ``gpu-node``, advertises what HAMi's and NVIDIA's device plugins
publish (``nvidia.com/gpu``, ``nvidia.com/mig-1g.10gb``, ``nvidia.com/gpu.shared``, and HAMi's
``nvidia.com/gpumem`` / ``nvidia.com/gpucores``, which HAMi's scheduler extender manages and a plain
kube-scheduler must find on the node) and carries HAMi's registration annotation and GPU feature
discovery's labels. HAMi's pods ask for ``hami-scheduler``: as HAMi's chart does, a second real
kube-scheduler runs with a profile of that name (without HAMi's extender, which is not built here).

Each kernel runs in a namespace whose ResourceQuota names the backend's keys: the real scheduler
places it on ``gpu-node``, the real quota charges it, it answers ``kernel_info`` and runs code,
a second launch over the quota is refused with the API server's own "exceeded quota" message, and
shutdown leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.kernels.sliced_kernel import KernelLaunchError
from tests.e2e.kernels.conftest import KernelspecFactory, kernel_objects, pod_of
from tests.support.kernel_session import run_in_kernel
from tests.support.managed_process import ManagedProcess

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

    from tests.cluster.control_plane import ControlPlane
    from tests.support.cluster_handle import ClusterHandle
    from tests.support.stack import BitfusionStack

GPU_NODE = "gpu-node"
HAMI_SCHEDULER = "hami-scheduler"
GPU_CAPACITY = {
    "cpu": "8",
    "memory": "32Gi",
    "pods": "110",
    "nvidia.com/gpu": "4",
    "nvidia.com/gpumem": "163840",
    "nvidia.com/gpucores": "400",
    "nvidia.com/mig-1g.10gb": "7",
    "nvidia.com/mig-2g.20gb": "3",
    "nvidia.com/gpu.shared": "8",
}
HAMI_REGISTRATION = json.dumps(
    [
        {
            "id": f"GPU-e2e-{index}",
            "count": 10,
            "devmem": 40960,
            "devcore": 100,
            "type": "NVIDIA-A100-SXM4-40GB",
            "health": True,
        }
        for index in range(4)
    ]
)
GFD_LABELS = {
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
    "nvidia.com/gpu.memory": "40960",
    "nvidia.com/gpu.count": "4",
    "nvidia.com/mig.strategy": "mixed",
}


@dataclass(frozen=True)
class Case:
    backend: str
    slice_text: str
    limits: dict[str, str]
    quota: dict[str, str]
    exceeded: str  # the quota key a second kernel exceeds
    scheduler: str = "default-scheduler"
    config: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "hami",
        "1x8Gi cores=30",
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8192", "nvidia.com/gpucores": "30"},
        {
            "requests.nvidia.com/gpu": "1",
            "limits.nvidia.com/gpumem": "16384",
            "limits.nvidia.com/gpucores": "100",
        },
        "requests.nvidia.com/gpu",
        scheduler=HAMI_SCHEDULER,
    ),
    Case(
        "nvidia",
        "1x10Gi",  # the smallest MIG profile that holds it
        {"nvidia.com/mig-1g.10gb": "1"},
        {"requests.nvidia.com/mig-1g.10gb": "1"},
        "requests.nvidia.com/mig-1g.10gb",
        config={"mig_profiles": ["mig-2g.20gb", "mig-1g.10gb"]},
    ),
    Case(
        "nvidia-time-slicing",
        "1xshared",
        {"nvidia.com/gpu": "1"},
        {"requests.nvidia.com/gpu": "1"},
        "requests.nvidia.com/gpu",
    ),
    Case(
        "nvidia-mps-renamed",
        "1xshared",
        {"nvidia.com/gpu.shared": "1"},
        {"requests.nvidia.com/gpu.shared": "1"},
        "requests.nvidia.com/gpu.shared",
    ),
]


def _scheduler_config(control_plane: ControlPlane, root: Path) -> Path:
    """A KubeSchedulerConfiguration with one profile, ``hami-scheduler`` (JSON is YAML)."""
    config = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {
            "kubeconfig": str(control_plane.root / "kubeconfigs" / "kube-scheduler.kubeconfig")
        },
        "leaderElection": {"leaderElect": False},
        "profiles": [{"schedulerName": HAMI_SCHEDULER}],
    }
    path = root / "hami-scheduler.yaml"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def gpu_node(
    cluster: ClusterHandle, bitfusion_stack: BitfusionStack | None, tmp_path_factory: Any
) -> Iterator[str]:
    """``gpu-node`` advertising HAMi's and NVIDIA's resources, and a kube-scheduler profile named
    ``hami-scheduler``; both stopped, and the Node deleted, at the end of the module."""
    if bitfusion_stack is None or bitfusion_stack.proxy is None:
        pytest.skip("the GPU node is a process-kubelet of the test cluster")
    from tests.cluster.kubelet.kubelet import ProcessKubelet

    root = tmp_path_factory.mktemp("gpu-node")
    control_plane = bitfusion_stack.control_plane
    kubelet = ProcessKubelet(
        control_plane,
        GPU_NODE,
        root / "node",
        capacity=GPU_CAPACITY,
        cluster_dns=bitfusion_stack.proxy.dns_file,
    )
    scheduler: ManagedProcess | None = None
    try:
        kubelet.start()
        cluster.api.patch(
            "Node",
            GPU_NODE,
            {
                "metadata": {
                    "labels": GFD_LABELS,
                    "annotations": {"hami.io/node-nvidia-register": HAMI_REGISTRATION},
                }
            },
        )
        scheduler = ManagedProcess(
            HAMI_SCHEDULER,
            [
                str(control_plane.binaries.kube_scheduler),
                f"--config={_scheduler_config(control_plane, root)}",
                "--secure-port=0",
            ],
            env=dict(os.environ),
            log_path=root / "hami-scheduler.log",
        )
        yield GPU_NODE
    finally:
        if scheduler is not None:
            scheduler.stop()
        kubelet.stop()
        cluster.delete_quietly("Node", GPU_NODE)


@pytest.mark.parametrize("case", CASES, ids=[case.backend for case in CASES])
async def test_kernel_on_a_slice_of_each_backend(
    case: Case,
    gpu_node: str,
    cluster: ClusterHandle,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    namespace = cluster.create_namespace_with_quota(case.quota, prefix="e2e-gpu")
    managers: list[AsyncKernelManager] = []
    try:
        spec = kernelspecs(namespace, gpu_backend=case.backend, **case.config)
        env = {"BF_SLICE": case.slice_text, "BF_GPU_BACKEND": case.backend}

        # given a kernel launched on a slice the backend honours
        manager = kernel_managers(spec)
        managers.append(manager)
        await manager.start_kernel(env=env)
        pod = cluster.api.get("Pod", pod_of(manager), namespace)

        # then the pod carries the backend's resources, and nothing of Bitfusion
        container = pod["spec"]["containers"][0]
        limits = container["resources"]["limits"]
        assert {k: v for k, v in limits.items() if k.startswith("nvidia.com/")} == case.limits
        assert not [k for k in limits if k.startswith("bitfusion.io/")]
        annotations = pod["metadata"].get("annotations") or {}
        assert "auto-management/bitfusion" not in annotations
        assert "bitfusion" not in " ".join(container["command"])
        assert not pod["spec"].get("initContainers")

        # and the real scheduler (HAMi's profile for HAMi) placed it on the GPU node
        assert pod["spec"]["schedulerName"] == case.scheduler
        assert pod["spec"]["nodeName"] == gpu_node
        scheduled = [
            event.get("reportingComponent")
            for event in cluster.events_for(namespace, pod_of(manager))
            if event.get("reason") == "Scheduled"
        ]
        assert scheduled == [case.scheduler]

        # and the real ResourceQuota charged it
        quota = cluster.api.get("ResourceQuota", "gpu-quota", namespace)
        assert quota["status"]["used"][case.exceeded] == "1"

        # and the kernel answers kernel_info and runs code under the slice
        out = await run_in_kernel(manager, "import os; print(6 * 7, os.environ['BF_SLICE'])")
        assert out.strip().split(maxsplit=1) == ["42", case.slice_text]

        # when a second kernel asks for more than the quota leaves, the API server refuses it
        refused = kernel_managers(spec)
        with pytest.raises(KernelLaunchError) as caught:
            await refused.start_kernel(env=env)
        message = str(caught.value)
        assert message.startswith("Kubernetes refused the kernel pod: ")
        assert "exceeded quota: gpu-quota" in message and case.exceeded in message
        assert kernel_objects(cluster, namespace) == [
            f"pod/{pod_of(manager)}",
            f"secret/{pod_of(manager)}",
        ]

        # when shut down, then no pod or Secret remains
        await manager.shutdown_kernel()
        assert not manager.has_kernel
        assert kernel_objects(cluster, namespace) == []
    finally:  # kernels first: their pods are gone before the namespace is
        for started in managers:
            if started.has_kernel:
                await started.shutdown_kernel(now=True)
        cluster.delete_namespace(namespace)
