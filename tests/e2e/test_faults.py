"""Faults the real control plane makes possible: the webhook gone while pods are created, the device
plugin restarted. Each test puts the cluster side back as it found it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.contract import QUOTA_RESOURCE
from bf_jupyter.kubeapi import KubeApiError
from tests.e2e.test_bitfusion_pods import workload
from tests.support.stack import NODE_NAME, SYSTEM_NAMESPACE

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle
    from tests.support.stack import BitfusionStack

Obj = dict[str, Any]
WEBHOOK_SELECTOR = "app.kubernetes.io/name=bf-webhook"
PLUGIN_SELECTOR = "app.kubernetes.io/name=bf-device-plugin"


def plain_pod(name: str) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "60"]}],
        },
    }


@pytest.fixture
def stack(bitfusion_stack: BitfusionStack | None) -> BitfusionStack:
    if bitfusion_stack is None:
        pytest.skip("stops parts of the cluster side: test cluster only")
    return bitfusion_stack


@pytest.fixture
def webhook_gone(cluster: ClusterHandle, stack: BitfusionStack) -> Iterator[None]:
    """No webhook pod serves (the Deployment scaled to 0); scaled back and answering afterwards,
    whatever happened in between."""
    kubectl = stack.control_plane.kubectl
    scale = ("-n", SYSTEM_NAMESPACE, "scale", "deployment/bf-webhook")
    try:
        assert kubectl(*scale, "--replicas=0").returncode == 0
        deadline = time.monotonic() + 120
        while cluster.api.list("Pod", SYSTEM_NAMESPACE, label_selector=WEBHOOK_SELECTOR):
            assert time.monotonic() < deadline, "the webhook pods were still there after 120 s"
            time.sleep(0.2)
        yield
    finally:
        assert kubectl(*scale, "--replicas=2").returncode == 0
        rolled = kubectl(
            "-n", SYSTEM_NAMESPACE, "rollout", "status", "deployment/bf-webhook", "--timeout=120s"
        )
        assert rolled.returncode == 0, rolled.stderr
        stack.wait_for_webhook()


def test_without_the_webhook_bitfusion_pods_are_refused_and_other_pods_run(
    cluster: ClusterHandle, namespace: str, webhook_gone: None
) -> None:
    # given no webhook pod answering
    # when a pod asking for a GPU slice is created, then validation fails closed
    with pytest.raises(KubeApiError) as refused:
        cluster.api.create("Pod", workload("train", 50, ["true"]), namespace)
    assert "validate.bf-jupyter.bitfusion.io" in str(refused.value)
    # and a pod with no Bitfusion keys never reaches the webhooks: it is admitted and runs
    cluster.api.create("Pod", plain_pod("plain"), namespace)
    cluster.wait_for_pod_phase(namespace, "plain", "Running")


def test_a_bitfusion_pod_is_admitted_again_once_the_webhook_is_back(
    cluster: ClusterHandle, namespace: str, stack: BitfusionStack
) -> None:
    # (the previous test's fixture rolled the webhook back out)
    created = cluster.api.create("Pod", workload("train", 50, ["true"]), namespace)
    assert created["spec"]["containers"][0]["resources"]["limits"] == {QUOTA_RESOURCE: "50"}


def _gpu_units(node: Obj) -> int:
    return int(((node.get("status") or {}).get("allocatable") or {}).get(QUOTA_RESOURCE, "0"))


def test_a_restarted_device_plugin_advertises_the_pool_again(
    cluster: ClusterHandle, stack: BitfusionStack
) -> None:
    # given the device plugin's DaemonSet pod, advertising the pool on the node
    (old,) = cluster.api.list("Pod", SYSTEM_NAMESPACE, label_selector=PLUGIN_SELECTOR)
    assert _gpu_units(cluster.api.get("Node", NODE_NAME)) == 200
    # when its pod is deleted, the DaemonSet starts a new one
    cluster.api.delete("Pod", old["metadata"]["name"], SYSTEM_NAMESPACE)
    cluster.wait_for(
        "Pod",
        SYSTEM_NAMESPACE,
        lambda _, pod: (
            pod["metadata"]["uid"] != old["metadata"]["uid"]
            and (pod.get("status") or {}).get("phase") == "Running"
        ),
        label_selector=PLUGIN_SELECTOR,
        timeout=120,
        describe="a new device-plugin pod",
    )
    # then the node's capacity comes back once it has registered again
    cluster.wait_for(
        "Node",
        None,
        lambda _, node: _gpu_units(node) == 200,
        field_selector=f"metadata.name={NODE_NAME}",
        timeout=120,
        describe=f"{QUOTA_RESOURCE} on {NODE_NAME}",
    )
