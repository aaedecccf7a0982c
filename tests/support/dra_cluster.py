"""A DRA GPU node on the test cluster, and the shipped DRA RBAC for a notebook namespace, shared by
the e2e and browser tests of the dra backend.

- ``dra_node(stack, root)``: the process-kubelet ``dra-node`` publishing, as NVIDIA's DRA driver,
  two whole 40Gi GPUs (DeviceClass ``gpu.nvidia.com``) and one 16Gi GPU whose memory claims
  consume (``shared.gpu.nvidia.com``); the DeviceClasses created; the node stopped and deleted on
  exit (its ResourceSlice goes with it).
- ``grant_dra_rbac(plane, namespace)`` / ``revoke_dra_rbac``: ``kubectl apply -k
  cluster/notebook/dra`` and the ``bf-jupyter-notebook-dra-pool`` binding, as the README says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bf_jupyter.kubeapi import KubeApi
from tests.cluster.kubelet.dra_driver import FakeGpu, ensure_device_classes
from tests.cluster.kubelet.kubelet import ProcessKubelet

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane
    from tests.support.stack import BitfusionStack

DRA_NODE = "dra-node"
DRA_GPUS = (FakeGpu(0), FakeGpu(1), FakeGpu(2, memory="16Gi", shared=True))
DRA_POOL_ROLE = "bf-jupyter-notebook-dra-pool"
DRA_FOLDER = Path(__file__).resolve().parents[2] / "cluster" / "notebook" / "dra"


@contextmanager
def dra_node(stack: BitfusionStack, root: Path) -> Iterator[str]:
    assert stack.proxy is not None, "the DRA node is a process-kubelet of the test cluster"
    plane = stack.control_plane
    api = KubeApi.connect(kubeconfig=str(plane.kubeconfig))
    try:
        ensure_device_classes(api)
        kubelet = ProcessKubelet(
            plane, DRA_NODE, root, cluster_dns=stack.proxy.dns_file, dra_gpus=DRA_GPUS
        )
        try:
            kubelet.start()
            yield DRA_NODE
        finally:
            kubelet.stop()
            api.delete("Node", DRA_NODE)
    finally:
        api.close()


def grant_dra_rbac(plane: ControlPlane, namespace: str) -> None:
    for args in (
        ["apply", "-k", str(DRA_FOLDER), "-n", namespace],
        ["create", "clusterrolebinding", f"{DRA_POOL_ROLE}-{namespace}",
         f"--clusterrole={DRA_POOL_ROLE}", f"--serviceaccount={namespace}:bf-jupyter-notebook"],
    ):  # fmt: skip
        done = plane.kubectl(*args)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"


def revoke_dra_rbac(plane: ControlPlane, namespace: str) -> None:
    plane.kubectl(
        "delete", "clusterrolebinding", f"{DRA_POOL_ROLE}-{namespace}", "--ignore-not-found"
    )
