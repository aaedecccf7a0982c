"""End to end: GPU-slice pods through our webhook, device plugin and the Bitfusion client
(``bitfusion-sim`` as the client image's binary), with namespace quota. Runs on the test cluster, or
on a real cluster when ``BF_E2E_KUBECONFIG`` is set (lease checks then need the simulated pool)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.contract import (
    ANNOTATION_MANAGEMENT,
    ANNOTATION_STATUS,
    QUOTA_RESOURCE,
    RESOURCE_AMOUNT,
    RESOURCE_PERCENT,
    STATUS_INJECTED,
)
from bf_jupyter.kubeapi import KubeApiError

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle
    from tests.support.stack import BitfusionStack

Obj = dict[str, Any]
QUOTA = {f"requests.{QUOTA_RESOURCE}": 100}
PROBE = "import os; print('slice', os.environ.get('BF_SIM_SLICE'), 'units', os.environ.get('BF_JUPYTER_GPU_UNITS'))"


def workload(name: str, percent: int, command: list[str]) -> Obj:
    """The seed's workload.yaml, shortened: one container asking for 1 GPU × ``percent``."""
    return {
        "metadata": {"name": name, "annotations": {ANNOTATION_MANAGEMENT: "all"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "train",
                    "image": "tensorflow/tensorflow:2.16.1-gpu",
                    "command": command,
                    "resources": {"limits": {RESOURCE_AMOUNT: "1", RESOURCE_PERCENT: str(percent)}},
                }
            ],
        },
    }


@pytest.fixture
def quota_namespace(cluster: ClusterHandle) -> Any:
    name = cluster.create_namespace_with_quota(QUOTA)
    yield name
    cluster.delete_namespace(name)


def test_workload_pod_runs_under_a_half_gpu_lease(
    cluster: ClusterHandle, bitfusion_stack: BitfusionStack | None, quota_namespace: str
) -> None:
    # given the seed's pod asking for half of one GPU, in a namespace with 100 units of quota
    created = cluster.api.create(
        "Pod", workload("train", 50, ["python", "-c", PROBE]), quota_namespace
    )

    # then our webhook mutated it: client injected, command wrapped, keys turned into quota units
    assert created["metadata"]["annotations"][ANNOTATION_STATUS] == STATUS_INJECTED
    train = created["spec"]["containers"][0]
    run = train["command"]
    assert run[0].endswith("/bin/bitfusion")  # the client image's binary (bitfusion-sim here)
    assert run[1:7] == ["run", "-n", "1", "-p", "0.5", "--"]
    assert run[7:] == ["python", "-c", PROBE]
    assert train["resources"]["limits"] == {QUOTA_RESOURCE: "50"}
    assert RESOURCE_AMOUNT not in train["resources"].get("requests", {})
    assert created["spec"]["initContainers"]

    # when it runs: scheduled on the capacity our device plugin advertised, to completion
    done = cluster.wait_for_pod_phase(
        quota_namespace, "train", ("Succeeded", "Failed"), timeout=120
    )
    log = cluster.pod_log(quota_namespace, "train", container="train")
    assert done["status"]["phase"] == "Succeeded", log
    node = cluster.api.get("Node", done["spec"]["nodeName"])
    assert int(node["status"]["allocatable"][QUOTA_RESOURCE]) >= 50
    # under the client's lease of 1 GPU × 50 %, with the device plugin's Allocate answer
    assert "Locked 1 GPUs" in log
    assert "slice 1x50% units 50" in log
    if bitfusion_stack is not None:
        assert int(node["status"]["allocatable"][QUOTA_RESOURCE]) == 100 * 2  # the sim's 2 GPUs
        assert bitfusion_stack.leases(quota_namespace) == []  # released when the command ended


def test_a_second_sixty_percent_pod_is_refused_by_the_quota(
    cluster: ClusterHandle, quota_namespace: str
) -> None:
    # given one 60 % pod holding its slice
    cluster.api.create("Pod", workload("first", 60, ["sleep", "30"]), quota_namespace)
    # when a second 60 % pod is created
    with pytest.raises(KubeApiError) as refused:
        cluster.api.create("Pod", workload("second", 60, ["sleep", "30"]), quota_namespace)
    # then it is refused for the quota (60 + 60 units exceed 100): our validating webhook says so
    # first, naming the ResourceQuota; the ResourceQuota itself would refuse it otherwise
    assert refused.value.status == 403
    message = str(refused.value)
    assert "ResourceQuota gpu-quota" in message or "exceeded quota: gpu-quota" in message, message
    assert "60" in message and "100" in message, message
    assert cluster.api.list("Pod", quota_namespace, field_selector="metadata.name=second") == []


def test_concurrent_sixty_percent_pods_get_kubernetes_quota_wording(
    cluster: ClusterHandle, quota_namespace: str
) -> None:
    # given two 60 % pods created at the same moment (both pass the webhook's early check)
    def create(name: str) -> str:
        try:
            cluster.api.create("Pod", workload(name, 60, ["sleep", "30"]), quota_namespace)
        except KubeApiError as error:
            return str(error)
        return "created"

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(create, ["left", "right"]))
    # then exactly one is admitted; the other is refused, by the ResourceQuota if both reached it
    assert outcomes.count("created") == 1, outcomes
    refusal = next(o for o in outcomes if o != "created")
    kubernetes_words = (
        "exceeded quota: gpu-quota, requested: requests.bitfusion.io/gpu=60, "
        "used: requests.bitfusion.io/gpu=60, limited: requests.bitfusion.io/gpu=100"
    )
    assert kubernetes_words in refusal or "ResourceQuota gpu-quota" in refusal, refusal


def test_image_that_cannot_be_pulled_shows_image_pull_back_off(
    cluster: ClusterHandle, namespace: str
) -> None:
    pod = {
        "metadata": {"name": "nopull"},
        "spec": {"containers": [{"name": "main", "image": "x:missing", "command": ["true"]}]},
    }
    cluster.api.create("Pod", pod, namespace)
    event = cluster.wait_for(
        "Event",
        namespace,
        lambda _type, ev: "ImagePullBackOff" in ev.get("message", ""),
        field_selector="involvedObject.name=nopull",
        describe="an ImagePullBackOff event",
        timeout=60,
    )
    assert event["type"] == "Warning"
