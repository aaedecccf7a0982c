"""The kubernetes backend's pool and quota views, over a stand-in for the KubeApi facade."""

from __future__ import annotations

from typing import Any

import pytest

from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable
from bf_jupyter.server.errors import ApiError, BackendUnavailable
from bf_jupyter.server.pool_view import PoolReader
from bf_jupyter.server.quota import QuotaReader, price
from bf_jupyter.slice import GpuSlice


class FakeKube:
    """Answers ``list(kind, namespace, ...)`` from canned objects; a kind mapped to an exception raises it."""

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, str | None]] = []

    def list(self, kind: str, namespace: str | None = None, **_: Any) -> list[dict[str, Any]]:
        self.calls.append((kind, namespace))
        found = self.objects.get(kind, [])
        if isinstance(found, Exception):
            raise found
        return list(found)


def _node(name: str, units: str | None) -> dict[str, Any]:
    allocatable = {"cpu": "8"} | ({"bitfusion.io/gpu": units} if units else {})
    return {"metadata": {"name": name}, "status": {"allocatable": allocatable}}


def _pod(node: str, units: str) -> dict[str, Any]:
    container = {"name": "c", "resources": {"requests": {"bitfusion.io/gpu": units}}}
    return {"spec": {"nodeName": node, "containers": [container]}}


def _quota(
    name: str, hard: str, used: str, key: str = "requests.bitfusion.io/gpu"
) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"hard": {key: hard}, "used": {key: used}}}


@pytest.fixture(autouse=True)
def _no_real_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BF_BITFUSION_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no real `bitfusion`: the embedded sim is not shown


async def test_the_cluster_pool_shows_each_gpu_nodes_allocatable_and_requested_units() -> None:
    kube = FakeKube(
        {
            "Node": [_node("gpu-a", "400"), _node("cpu-only", None), _node("gpu-b", "200")],
            "Pod": [_pod("gpu-a", "50"), _pod("gpu-a", "100"), _pod("elsewhere", "25")],
        }
    )
    pool = await PoolReader("kubernetes", kube=lambda: kube).read()  # type: ignore[arg-type,return-value]
    assert pool["backend"] == "kubernetes"
    assert pool["nodes"] == [
        {"name": "gpu-a", "allocatable_units": 400, "used_units": 150, "allocatable_gpus": 4.0},
        {"name": "gpu-b", "allocatable_units": 200, "used_units": 0, "allocatable_gpus": 2.0},
    ]
    assert pool["servers"] == []
    assert pool["simulated"] is False


async def test_pods_of_other_namespaces_out_of_reach_leave_usage_unknown_not_wrong() -> None:
    forbidden = KubeApiError("pods is forbidden", status=403, reason="Forbidden")
    kube = FakeKube({"Node": [_node("gpu-a", "400")], "Pod": forbidden})
    pool = await PoolReader("kubernetes", kube=lambda: kube).read()  # type: ignore[arg-type,return-value]
    assert pool["nodes"][0]["used_units"] is None


async def test_an_unreachable_cluster_is_a_503_saying_so() -> None:
    kube = FakeKube({"Node": KubeUnavailable("Kubernetes API unreachable: connection refused")})
    with pytest.raises(
        BackendUnavailable, match="Cluster nodes could not be read: Kubernetes API unreachable"
    ):
        await PoolReader("kubernetes", kube=lambda: kube).read()  # type: ignore[arg-type,return-value]


async def test_the_tightest_quota_of_the_configured_namespace_applies() -> None:
    kube = FakeKube(
        {
            "ResourceQuota": [
                _quota("team", "400", "100"),
                _quota("gpu-cap", "200", "150", key="bitfusion.io/gpu"),
            ]
        }
    )
    quota = await QuotaReader("kubernetes", namespace="team-a", kube=lambda: kube).read()  # type: ignore[arg-type,return-value]
    assert kube.calls == [("ResourceQuota", "team-a")]
    assert (quota["hard_units"], quota["used_units"], quota["remaining_units"]) == (200, 150, 50)
    assert quota["source"] == "ResourceQuota gpu-cap"
    assert quota["namespace"] == "team-a"
    # and a slice over what remains does not fit, with the reason
    verdict = price(GpuSlice.parse("1x60%"), quota=quota, pool=None, per_gpu_memory=None)
    assert not verdict.fits
    assert verdict.reason == (
        "1 GPU × 60 % costs 60 bitfusion.io/gpu units but only 50 of 200 remain in the quota "
        "(ResourceQuota gpu-cap)"
    )


async def test_a_namespace_without_a_gpu_quota_says_so_plainly() -> None:
    kube = FakeKube(
        {"ResourceQuota": [{"metadata": {"name": "cpu"}, "status": {"hard": {"cpu": "4"}}}]}
    )
    quota = await QuotaReader("kubernetes", namespace="team-a", kube=lambda: kube).read()  # type: ignore[arg-type,return-value]
    assert quota["has_quota"] is False
    assert quota["message"] == "No GPU quota: namespace team-a does not limit bitfusion.io/gpu."


async def test_a_memory_slice_without_a_known_gpu_size_is_refused_naming_the_fix() -> None:
    quota = {"has_quota": False}
    with pytest.raises(ApiError, match="configure the per-GPU memory"):
        price(GpuSlice.parse("1x8Gi"), quota=quota, pool=None, per_gpu_memory=None)
