"""The process-kubelet as a DRA driver on a real control plane: its ResourceSlice is what the real
kube-scheduler allocates claims from (the resourceclaim controller makes them from templates), and
a pod's allocated claims reach its container's environment with their sharing settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.backends import get_backend
from bf_jupyter.backends.dra import DraBackend
from bf_jupyter.slice import GpuSlice
from tests.cluster.kubelet.dra_driver import ensure_device_classes
from tests.cluster.kubelet.pod_specs import NODE, pod, python

if TYPE_CHECKING:
    from tests.cluster.kubelet import ProcessKubelet
    from tests.support.cluster_handle import ClusterHandle

ENV = ["CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "GPU_SHARING_STRATEGY",
       "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"]  # fmt: skip
# prints the env, then stays (claims of finished pods are deleted by the resourceclaim controller)
PRINT_ENV = (
    f"import json,os,time; print(json.dumps({{k: os.environ.get(k) for k in {ENV!r}}}), "
    "flush=True); time.sleep(120)"
)


@pytest.fixture(scope="module")
def device_classes(cluster: ClusterHandle, kubelet: ProcessKubelet) -> Iterator[None]:
    ensure_device_classes(cluster.api)
    yield


def on_slice(cluster: ClusterHandle, namespace: str, name: str, text: str, backend: Any) -> None:
    """A pod on the test node claiming ``text`` through a template rendered by ``backend``."""
    rendering = backend.render(GpuSlice.parse(text)).named(name, namespace, {"test": name})
    spec = pod(name, python(PRINT_ENV))
    spec["spec"]["nodeSelector"] = {"kubernetes.io/hostname": NODE}
    rendering.apply(spec["spec"], spec["metadata"], spec["spec"]["containers"][0])
    for obj in rendering.objects:
        cluster.api.create(obj["kind"], obj, namespace)
    cluster.api.create("Pod", spec, namespace)


def env_of(cluster: ClusterHandle, namespace: str, name: str) -> dict[str, str | None]:
    running = cluster.wait_for_pod_phase(namespace, name, ("Running", "Failed"))
    assert running["status"]["phase"] == "Running", running["status"]
    line = cluster.follow_log(namespace, name).wait_for_line("{")
    return dict(json.loads(line))


def test_the_node_publishes_its_gpus_in_a_resource_slice(
    cluster: ClusterHandle, kubelet: ProcessKubelet
) -> None:
    (found,) = cluster.api.list("ResourceSlice", field_selector=f"spec.nodeName={NODE}")
    assert found["spec"]["driver"] == "gpu.nvidia.com"
    devices = {d["name"]: d for d in found["spec"]["devices"]}
    assert sorted(devices) == ["gpu-0", "gpu-1", "gpu-2"]
    assert devices["gpu-0"]["attributes"]["productName"] == {"string": "NVIDIA A100-SXM4-40GB"}
    assert devices["gpu-2"]["capacity"]["memory"]["value"] == "16Gi"
    assert devices["gpu-2"]["allowMultipleAllocations"] is True


def test_two_whole_gpus_reach_the_container(
    cluster: ClusterHandle, namespace: str, device_classes: None
) -> None:
    on_slice(cluster, namespace, "two", "2", get_backend("dra"))
    env = env_of(cluster, namespace, "two")
    assert sorted(str(env["CUDA_VISIBLE_DEVICES"]).split(",")) == ["0", "1"]
    assert sorted(str(env["NVIDIA_VISIBLE_DEVICES"]).split(",")) == [
        f"GPU-{NODE}-0",
        f"GPU-{NODE}-1",
    ]
    assert env["GPU_SHARING_STRATEGY"] is None
    # the claim was made from the template, owned by the pod, and allocated on this node
    (claim,) = cluster.api.list("ResourceClaim", namespace)
    assert claim["metadata"]["ownerReferences"][0]["name"] == "two"
    assert claim["metadata"]["labels"] == {"test": "two"}
    results = claim["status"]["allocation"]["devices"]["results"]
    assert {r["pool"] for r in results} == {NODE}


def test_a_fraction_is_prepared_with_the_mps_settings(
    cluster: ClusterHandle, namespace: str, device_classes: None
) -> None:
    on_slice(cluster, namespace, "mps", "1x8Gi cores=30", get_backend("dra"))
    env = env_of(cluster, namespace, "mps")
    assert env["GPU_SHARING_STRATEGY"] == "MPS"
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "30"
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=8192M"
    assert env["CUDA_VISIBLE_DEVICES"] in ("0", "1")  # never the shared GPU: not its class


def test_consumable_memory_is_accounted_by_the_scheduler(
    cluster: ClusterHandle, namespace: str, device_classes: None
) -> None:
    shared = DraBackend(consumable_capacity=True).with_device_class("shared.gpu.nvidia.com")
    # given a first slice of 12Gi of the 16Gi shared GPU, running
    held = pod("held", python("import time; time.sleep(60)"))
    rendering = shared.render(GpuSlice.parse("1x12Gi")).named("held", namespace, {})
    rendering.apply(held["spec"], held["metadata"], held["spec"]["containers"][0])
    cluster.api.create("ResourceClaimTemplate", rendering.objects[0], namespace)
    cluster.api.create("Pod", held, namespace)
    cluster.wait_for_pod_phase(namespace, "held", "Running")
    (claim,) = cluster.api.list("ResourceClaim", namespace)
    (result,) = claim["status"]["allocation"]["devices"]["results"]
    assert (result["device"], result["consumedCapacity"]) == ("gpu-2", {"memory": "12Gi"})
    # when a second one asks for 8Gi more of it, then the real scheduler cannot allocate it
    on_slice(cluster, namespace, "over", "1x8Gi", shared)
    pending = cluster.wait_for_pod(
        namespace,
        "over",
        lambda p: any(
            c.get("reason") == "Unschedulable"
            for c in (p.get("status") or {}).get("conditions") or []
        ),
    )
    (condition,) = [c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert "cannot allocate all claims" in condition["message"]
    # and a 4Gi slice still fits beside the first
    on_slice(cluster, namespace, "fits", "1x4Gi", shared)
    env = env_of(cluster, namespace, "fits")
    assert (env["CUDA_VISIBLE_DEVICES"], env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"]) == (
        "2",
        "0=4096M",
    )
