"""Kernels in pods on the e2e cluster (the test cluster, or real with BF_E2E_KUBECONFIG): kernelspecs that
point the Kubernetes provisioner at the test namespace, kernel managers, and leftover checks.

On a real cluster the kernel image comes from ``$BF_E2E_KERNEL_IMAGE`` and the tests must run where
pod addresses are reachable (inside the cluster network); the process-kubelet runs images as this
machine, except those ending in ``:missing``, which it cannot pull.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from jupyter_client.manager import AsyncKernelManager

from bf_jupyter.contract import LABEL_COMPONENT, LABEL_NAME
from bf_jupyter.kernels.kernelspecs import KernelspecRequest, render_kernel_json

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle

KERNEL_IMAGE_ENV = "BF_E2E_KERNEL_IMAGE"
KERNEL_SELECTOR = f"{LABEL_NAME}=bf-jupyter,{LABEL_COMPONENT}=kernel"
KernelspecFactory = Callable[..., str]


@pytest.fixture
def kernelspecs(
    cluster: ClusterHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KernelspecFactory]:
    """``make(namespace, name=..., argv=..., **config)``: a Kubernetes kernelspec for a namespace
    (provisioner ``config`` entries override the defaults), visible to kernel managers."""
    root = tmp_path / "jupyter"
    monkeypatch.setenv("JUPYTER_PATH", str(root))

    def make(
        namespace: str, *, name: str = "bf-k8s", argv: list[str] | None = None, **config: Any
    ) -> str:
        spec = render_kernel_json(KernelspecRequest(backend="kubernetes", namespace=namespace))
        provisioner = spec["metadata"]["kernel_provisioner"]["config"]
        provisioner.update(
            image=os.environ.get(KERNEL_IMAGE_ENV, "bf-jupyter/kernel:e2e"),
            kubeconfig=str(cluster.kubeconfig),
            server_id=f"e2e-{namespace}",
            cpu_request="",
            memory_request="",
            launch_timeout=120,
        )
        provisioner.update(config)
        if argv is not None:
            spec["argv"] = argv
        directory = root / "kernels" / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "kernel.json").write_text(json.dumps(spec))
        return name

    yield make


@pytest.fixture
async def kernel_managers() -> AsyncIterator[Callable[..., AsyncKernelManager]]:
    """``new(kernel_name, **traits)``: kernel managers shut down (now) at the end of the test."""
    made: list[AsyncKernelManager] = []

    def new(kernel_name: str, **traits: Any) -> AsyncKernelManager:
        manager = AsyncKernelManager(kernel_name=kernel_name, **traits)
        made.append(manager)
        return manager

    yield new
    for manager in made:
        if manager.has_kernel:
            await manager.shutdown_kernel(now=True)


def kernel_objects(cluster: ClusterHandle, namespace: str) -> list[str]:
    """Kernel pods and Secrets left in the namespace, as ``kind/name``."""
    return [
        f"{kind.lower()}/{obj['metadata']['name']}"
        for kind in ("Pod", "Secret")
        for obj in cluster.api.list(kind, namespace, label_selector=KERNEL_SELECTOR)
    ]


def pod_of(manager: AsyncKernelManager) -> str:
    """The pod the manager's kernel runs in now."""
    return str(getattr(manager.provisioner, "pod_name", None))


def lease_slices(stack: Any, namespace: str) -> list[str]:
    """The slices the namespace's emulated pool holds ([] on a real cluster, where leases are not
    visible)."""
    return [] if stack is None else [lease.slice_text for lease in stack.leases(namespace)]
