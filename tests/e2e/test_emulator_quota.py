"""ResourceQuota in the emulated API: Kubernetes' wording, atomic under concurrent creates, and
``status.used`` kept current as pods come, finish and go."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from bf_jupyter.kubeapi import KubeApiError

if TYPE_CHECKING:
    from tests.e2e.cluster_handle import ClusterHandle


GPU = "requests.bitfusion.io/gpu"


def gpu_pod(name: str, units: int, command: tuple[str, ...] = ("sleep", "60")) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "python:3",
                    "command": list(command),
                    "resources": {"limits": {"bitfusion.io/gpu": str(units)}},
                }
            ],
        },
    }


@pytest.fixture
def quota_namespace(emulator: ClusterHandle) -> object:
    name = emulator.create_namespace_with_quota({GPU: 100})
    yield name
    emulator.delete_namespace(name)


def test_second_pod_over_quota_is_refused_in_kubernetes_words(
    emulator: ClusterHandle, quota_namespace: str
) -> None:
    # given one 60-unit pod admitted
    emulator.api.create("Pod", gpu_pod("first", 60), quota_namespace)
    # when a second 60-unit pod is created
    with pytest.raises(KubeApiError) as refused:
        emulator.api.create("Pod", gpu_pod("second", 60), quota_namespace)
    # then the API refuses it with 403 and kube-apiserver's message
    assert (refused.value.status, refused.value.reason) == (403, "Forbidden")
    assert str(refused.value) == (
        'pods "second" is forbidden: exceeded quota: gpu-quota, requested: requests.bitfusion.io/gpu=60, '
        "used: requests.bitfusion.io/gpu=60, limited: requests.bitfusion.io/gpu=100"
    )


def test_concurrent_creates_never_exceed_the_quota(
    emulator: ClusterHandle, quota_namespace: str
) -> None:
    # given ten clients each creating a 30-unit pod at once against 100 units
    def create(index: int) -> str:
        try:
            emulator.api.create("Pod", gpu_pod(f"p{index}", 30), quota_namespace)
        except KubeApiError as error:
            return error.reason
        return "created"

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(create, range(10)))
    # then exactly three are admitted and the rest refused by the quota
    assert sorted(outcomes).count("created") == 3
    assert outcomes.count("Forbidden") == 7
    quota = emulator.api.get("ResourceQuota", "gpu-quota", quota_namespace)
    assert quota["status"]["used"][GPU] == "90"
    assert quota["status"]["hard"][GPU] == "100"


def test_finished_and_deleted_pods_stop_counting(
    emulator: ClusterHandle, quota_namespace: str
) -> None:
    # given a pod that uses 60 units and finishes, and one that runs
    emulator.api.create("Pod", gpu_pod("done", 60, ("true",)), quota_namespace)
    emulator.wait_for_pod_phase(quota_namespace, "done", "Succeeded")
    emulator.api.create("Pod", gpu_pod("running", 70), quota_namespace)
    emulator.wait_for(
        "ResourceQuota",
        quota_namespace,
        lambda _e, q: (q.get("status") or {}).get("used", {}).get(GPU) == "70",
        describe="quota used to show 70",
    )
    # when the running pod is deleted
    emulator.api.delete("Pod", "running", quota_namespace)
    emulator.wait_for_pod_gone(quota_namespace, "running")
    # then its units are free again
    quota = emulator.api.get("ResourceQuota", "gpu-quota", quota_namespace)
    assert quota["status"]["used"][GPU] == "0"
    emulator.api.create("Pod", gpu_pod("again", 100), quota_namespace)


def test_cpu_quota_requires_pods_to_say_what_they_request(emulator: ClusterHandle) -> None:
    namespace = emulator.create_namespace_with_quota(
        {"requests.cpu": "2", "pods": 5}, quota_name="compute"
    )
    try:
        with pytest.raises(KubeApiError) as refused:
            emulator.api.create("Pod", gpu_pod("no-cpu", 10), namespace)
        assert refused.value.status == 403
        assert "failed quota: compute: must specify requests.cpu for: main" in str(refused.value)
    finally:
        emulator.delete_namespace(namespace)
