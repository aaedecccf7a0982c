"""A notebook kernel on a DRA slice: a ResourceClaimTemplate created with the kernel pod, the claim
the real resourceclaim controller makes from it, the real kube-scheduler's allocation from the
ResourceSlice of a process-kubelet acting as NVIDIA's DRA driver, and the real ResourceQuota.

``dra-node`` publishes two whole 40Gi GPUs (DeviceClass ``gpu.nvidia.com``) and one 16Gi GPU whose
memory claims consume (``shared.gpu.nvidia.com``, consumable capacity). Each kernel answers
``kernel_info`` and sees its devices and sharing settings in its environment, as the driver
prepares them; the quota refuses a second kernel with the API server's words; two slices that
together exceed the shared GPU are refused by the scheduler; shutdown leaves no pod, Secret,
template or claim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.kernels.sliced_kernel import KernelLaunchError
from tests.e2e.kernels.conftest import KERNEL_SELECTOR, KernelspecFactory, pod_of
from tests.support.kernel_session import run_in_kernel

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

    from tests.support.cluster_handle import ClusterHandle
    from tests.support.stack import BitfusionStack

QUOTA_KEY = "gpu.nvidia.com.deviceclass.resource.k8s.io/devices"
SHOW_ENV = (
    "import os; print(os.environ.get('CUDA_VISIBLE_DEVICES'), "
    "os.environ.get('GPU_SHARING_STRATEGY'), os.environ.get('CUDA_MPS_PINNED_DEVICE_MEM_LIMIT'))"
)


@dataclass(frozen=True)
class Case:
    slice_text: str
    quota: int  # devices of gpu.nvidia.com the namespace may claim: exactly this kernel's
    devices: int
    sharing: str  # what the kernel prints: strategy and memory limit


CASES = [
    pytest.param(
        Case("1x8Gi", 1, 1, "MPS 0=8192M"),
        id="1x8Gi",
        # Passes alone and with the DRA tests; in the whole suite the scheduler found no free
        # 8Gi device on dra-node once (something earlier holds one): issue 15 stays open on it.
        marks=pytest.mark.xfail(reason="dra-node's device held in the full suite", strict=False),
    ),
    pytest.param(Case("2", 2, 2, "None None"), id="2"),
]


@pytest.fixture(scope="module")
def dra_node(bitfusion_stack: BitfusionStack | None, tmp_path_factory: Any) -> Iterator[str]:
    """``dra-node`` publishing its GPUs as a DRA driver (``tests.support.dra_cluster``)."""
    if bitfusion_stack is None or bitfusion_stack.proxy is None:
        pytest.skip("the DRA node is a process-kubelet of the test cluster")
    from tests.support.dra_cluster import dra_node as started

    with started(bitfusion_stack, tmp_path_factory.mktemp("dra-node") / "node") as name:
        yield name


def dra_objects(cluster: ClusterHandle, namespace: str) -> list[str]:
    """Kernel pods, Secrets, claim templates and claims left in the namespace, as ``kind/name``."""
    return sorted(
        f"{kind.lower()}/{obj['metadata']['name']}"
        for kind in ("Pod", "Secret", "ResourceClaimTemplate", "ResourceClaim")
        for obj in cluster.api.list(kind, namespace, label_selector=KERNEL_SELECTOR)
    )


@pytest.mark.parametrize("case", CASES)
async def test_kernel_on_a_dra_slice(
    case: Case,
    dra_node: str,
    cluster: ClusterHandle,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    namespace = cluster.create_namespace_with_quota({QUOTA_KEY: case.quota}, prefix="e2e-dra")
    managers: list[AsyncKernelManager] = []
    try:
        spec = kernelspecs(namespace, gpu_backend="dra")
        env = {"BF_SLICE": case.slice_text, "BF_GPU_BACKEND": "dra"}

        # given a kernel launched on a DRA slice
        manager = kernel_managers(spec)
        managers.append(manager)
        await manager.start_kernel(env=env)
        name = pod_of(manager)
        pod = cluster.api.get("Pod", name, namespace)

        # then its pod claims a template of its own name, owned by the pod, and nothing else
        assert pod["spec"]["resourceClaims"] == [{"name": "gpu", "resourceClaimTemplateName": name}]
        container = pod["spec"]["containers"][0]
        assert container["resources"]["claims"] == [{"name": "gpu"}]
        assert not [k for k in container["resources"].get("limits") or {} if "/" in k]
        template = cluster.api.get("ResourceClaimTemplate", name, namespace)
        assert [o["uid"] for o in template["metadata"]["ownerReferences"]] == [
            pod["metadata"]["uid"]
        ]
        # and the real scheduler allocated the claim made from it on the DRA node
        assert pod["spec"]["nodeName"] == dra_node
        (claim,) = cluster.api.list("ResourceClaim", namespace)
        results = claim["status"]["allocation"]["devices"]["results"]
        assert len(results) == case.devices and {r["pool"] for r in results} == {dra_node}
        assert cluster.api.get("ResourceQuota", "gpu-quota", namespace)["status"]["used"][
            QUOTA_KEY
        ] == str(case.devices)

        # and the kernel runs code on the devices the driver prepared, with their sharing
        out = (await run_in_kernel(manager, SHOW_ENV)).split()
        assert len(out[0].split(",")) == case.devices
        assert " ".join(out[1:]) == case.sharing

        # when a second kernel's claim exceeds the quota, the API server's refusal ends it
        refused = kernel_managers(spec)
        managers.append(refused)
        with pytest.raises(KernelLaunchError) as caught:
            await refused.start_kernel(env=env)
        message = str(caught.value)
        assert message.startswith("Kubernetes refused the kernel's ResourceClaim: ")
        assert "exceeded quota: gpu-quota" in message and QUOTA_KEY in message
        assert dra_objects(cluster, namespace) == sorted(
            [f"pod/{name}", f"secret/{name}", f"resourceclaimtemplate/{name}",
             f"resourceclaim/{claim['metadata']['name']}"]
        )  # fmt: skip

        # when shut down, then no pod, Secret, template or claim remains
        await manager.shutdown_kernel()
        assert dra_objects(cluster, namespace) == []
    finally:
        for started in managers:
            if started.has_kernel:
                await started.shutdown_kernel(now=True)
        cluster.delete_namespace(namespace)


async def test_two_slices_exceeding_a_shared_gpu_are_refused_by_the_scheduler(
    dra_node: str,
    cluster: ClusterHandle,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
) -> None:
    namespace = cluster.create_namespace(prefix="e2e-dra")
    try:
        spec = kernelspecs(
            namespace,
            gpu_backend="dra-consumable-capacity",
            dra_device_class="shared.gpu.nvidia.com",
        )
        env = {"BF_SLICE": "1x12Gi", "BF_GPU_BACKEND": "dra-consumable-capacity"}
        # given a kernel on 12Gi of the 16Gi GPU
        first = kernel_managers(spec)
        await first.start_kernel(env=env)
        assert (await run_in_kernel(first, SHOW_ENV)).split() == ["2", "MPS", "0=12288M"]

        # when a second kernel asks for 8Gi of it, the scheduler cannot allocate its claim
        second = kernel_managers(spec)
        with pytest.raises(KernelLaunchError) as caught:
            await second.start_kernel(env={**env, "BF_SLICE": "1x8Gi"})
        message = str(caught.value)
        assert message.startswith("No node can run the kernel pod: ")
        assert "cannot allocate all claims" in message
        assert message.endswith(
            "the kernel's claim asked for request gpu: 1 × shared.gpu.nvidia.com with 8Gi of "
            "memory each."
        )
        # and the refused kernel left nothing; the first keeps its claim
        name = pod_of(first)
        left = dra_objects(cluster, namespace)
        assert [o for o in left if not o.startswith("resourceclaim/")] == [
            f"pod/{name}",
            f"resourceclaimtemplate/{name}",
            f"secret/{name}",
        ]
        assert len([o for o in left if o.startswith("resourceclaim/")]) == 1
        await first.shutdown_kernel()
        assert dra_objects(cluster, namespace) == []
    finally:
        cluster.delete_namespace(namespace)


def _orphans(server_id: str) -> list[dict[str, Any]]:
    """A claim template and a claim labelled for ``server_id``'s kernel ``orphan``, as a crashed
    server process would leave them (never allocated: no pod uses them)."""
    labels = {
        "app.kubernetes.io/name": "bf-jupyter",
        "app.kubernetes.io/component": "kernel",
        "bf-jupyter/kernel-id": "orphan",
        "bf-jupyter/server": server_id,
    }
    devices = {
        "requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 1}}]
    }
    return [
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaimTemplate",
            "metadata": {"name": "orphan", "labels": labels},
            "spec": {"spec": {"devices": devices}},
        },
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {"name": "orphan", "labels": labels},
            "spec": {"devices": devices},
        },
    ]


def _dra_rules() -> set[tuple[str, str, str]]:
    """(verb, resource, scope) the shipped DRA rules give: the Role of cluster/notebook/dra and
    the ClusterRole bf-jupyter-notebook-dra-pool."""
    from tests.support import notebook_rbac
    from tests.support.dra_cluster import DRA_POOL_ROLE

    granted: set[tuple[str, str, str]] = set()
    for obj in notebook_rbac.kustomize(notebook_rbac.REPO / "cluster" / "notebook" / "dra"):
        if obj["kind"] == "Role":
            granted |= {(v, r, "namespace") for rule in obj["rules"] for v in rule["verbs"]
                        for r in rule["resources"]}  # fmt: skip
    for obj in notebook_rbac.kustomize(notebook_rbac.REPO / "cluster" / "base"):
        if obj["kind"] == "ClusterRole" and obj["metadata"]["name"] == DRA_POOL_ROLE:
            granted |= {(v, r, "cluster") for rule in obj["rules"] for v in rule["verbs"]
                        for r in rule["resources"]}  # fmt: skip
    return granted


async def test_the_shipped_dra_rbac_is_exactly_what_the_server_needs(
    *,
    dra_node: str,
    cluster: ClusterHandle,
    bitfusion_stack: BitfusionStack,
    kernelspecs: KernelspecFactory,
    kernel_managers: Callable[[str], AsyncKernelManager],
    tmp_path: Any,
) -> None:
    from bf_jupyter.kubeapi import KubeApi
    from bf_jupyter.server.pool_view import PoolReader
    from tests.support import notebook_rbac
    from tests.support.dra_cluster import grant_dra_rbac, revoke_dra_rbac

    plane = bitfusion_stack.control_plane
    namespace = cluster.create_namespace(prefix="e2e-dra-rbac")
    try:
        # given a notebook server's service account with the shipped RBAC, DRA's included
        identity = notebook_rbac.deploy(plane, namespace, tmp_path)
        grant_dra_rbac(plane, namespace)
        # and what a crashed server process left
        server_id = f"e2e-{namespace}"
        for orphan in _orphans(server_id):
            cluster.api.create(orphan["kind"], orphan, namespace)

        # when a kernel runs on a DRA slice as that service account, reaping first
        spec = kernelspecs(
            namespace, gpu_backend="dra", kubeconfig=str(identity.kubeconfig), reap_orphans=True
        )
        manager = kernel_managers(spec)
        await manager.start_kernel(env={"BF_SLICE": "1", "BF_GPU_BACKEND": "dra"})
        # and the server reads the DRA pool with it
        api = KubeApi.connect(kubeconfig=str(identity.kubeconfig))
        try:
            reader = PoolReader("kubernetes", kube=lambda: api, gpu_backends=["dra"])
            pool = await reader.read()
        finally:
            api.close()
        gpus = {g["id"]: g for g in pool["gpu_pools"]["dra"]["gpus"]}
        assert [g["tasks"] for g in gpus.values() if g["node"] == dra_node].count(1) == 1
        await manager.shutdown_kernel()

        # then the orphans were reaped and nothing is left
        assert dra_objects(cluster, namespace) == []
        assert not cluster.api.list("ResourceClaim", namespace)
        # and every call was allowed, and every DRA rule was needed
        calls = notebook_rbac.calls(plane, identity.user)
        refused = [c.describe() for c in calls if not c.allowed]
        assert refused == []
        dra_resources = {"resourceclaimtemplates", "resourceclaims", "resourceslices"}
        used = {u for u in notebook_rbac.used(calls) if u[1] in dra_resources}
        granted = _dra_rules()
        assert used <= granted
        # watching claims is needed only when one outlives its pod a moment (a race it may win)
        assert granted - used <= {("watch", "resourceclaims", "namespace")}
    finally:
        notebook_rbac.undeploy(plane, namespace)
        revoke_dra_rbac(plane, namespace)
        cluster.delete_namespace(namespace)
