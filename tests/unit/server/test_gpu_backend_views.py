"""The server's per-GPU-backend pool, quota and price views, over canned cluster objects."""

from __future__ import annotations

from typing import Any

import pytest

from bf_jupyter.backends import Offer, get_backend
from bf_jupyter.backends.hami import ALLOCATED_ANNOTATION, REGISTER_ANNOTATION
from bf_jupyter.kubeapi import KubeApiError
from bf_jupyter.server.gpu_backends import offer_from_pool, offered, price_json, quotas_json
from bf_jupyter.server.pool_view import PoolReader
from bf_jupyter.server.quota import QuotaReader
from bf_jupyter.slice import GpuSlice
from tests.unit.backends.conftest import hami_register, node, pod
from tests.unit.server.test_cluster_views import FakeKube

HAMI_NODE = node(
    "h1",
    allocatable={"nvidia.com/gpu": "10"},
    annotations={REGISTER_ANNOTATION: hami_register([("GPU-a", 16384, "A100")])},
)
MIG_NODE = node("m1", allocatable={"nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-2g.20gb": "3"})


def _quota(hard: dict[str, str], used: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "gpu"}, "status": {"hard": hard, "used": used}}


@pytest.fixture(autouse=True)
def _no_real_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BF_BITFUSION_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")


def test_configured_backends_win_over_discovery() -> None:
    assert offered(["hami"], [MIG_NODE]) == ["hami"]
    assert offered([], [MIG_NODE, HAMI_NODE]) == ["hami", "nvidia"]
    assert offered([], None) == ["bitfusion"]


async def test_cluster_pool_reads_every_discovered_backends_pool() -> None:
    pods = [
        pod(
            "h1",
            {"nvidia.com/gpu": "1"},
            annotations={ALLOCATED_ANNOTATION: "GPU-a,NVIDIA,4096,25:;"},
        )
    ]
    kube = FakeKube({"Node": [HAMI_NODE, MIG_NODE], "Pod": pods})
    pool = await PoolReader("kubernetes", kube=lambda: kube).read()  # type: ignore[arg-type,return-value]
    assert pool["gpu_backends"] == ["hami", "nvidia"]
    (gpu,) = pool["gpu_pools"]["hami"]["gpus"]
    assert (gpu["used_memory_mib"], gpu["used_cores"], gpu["free_fraction"]) == (4096, 25, 0.75)
    assert offer_from_pool(pool, "nvidia", None).mig_profiles == ("mig-1g.10gb", "mig-2g.20gb")
    assert offer_from_pool(pool, "hami", None).per_gpu_memory_bytes == 16384 << 20
    assert pool["nodes"] == []  # the Bitfusion view is unchanged: no node advertises its units


async def test_cluster_quota_lists_each_backends_keys() -> None:
    quota = _quota(
        {"limits.nvidia.com/gpumem": "16384", "requests.nvidia.com/mig-1g.10gb": "2"},
        {"limits.nvidia.com/gpumem": "8192", "requests.nvidia.com/mig-1g.10gb": "2"},
    )
    kube = FakeKube({"ResourceQuota": [quota]})
    read = await QuotaReader("kubernetes", namespace="ns", kube=lambda: kube).read()  # type: ignore[arg-type,return-value]
    assert read["has_quota"] is False  # no bitfusion.io/gpu quota, as before
    assert read["gpu_quotas"]["hami"] == [
        {
            "key": "limits.nvidia.com/gpumem",
            "hard": 16384,
            "used": 8192,
            "remaining": 8192,
            "source": "ResourceQuota gpu",
        }
    ]
    assert read["gpu_quotas"]["nvidia"][0]["key"] == "requests.nvidia.com/mig-1g.10gb"


def test_price_says_which_quota_key_is_short() -> None:
    entries = quotas_json(
        ["hami"],
        [_quota({"limits.nvidia.com/gpumem": "16384"}, {"limits.nvidia.com/gpumem": "12288"})],
    )["hami"]
    verdict = price_json(
        get_backend("hami"), GpuSlice.parse("1x8Gi"), entries, offer_from_pool(None, "hami", None)
    )
    assert verdict["fits"] is False
    assert verdict["reason"] == (
        "1 GPU × 8Gi each costs 8192 MiB of GPU memory of nvidia.com/gpumem but only 4096 of "
        "16384 remain (ResourceQuota gpu on limits.nvidia.com/gpumem)"
    )


def test_price_on_mig_uses_the_profiles_the_pool_offers() -> None:
    pool = {"gpu_pools": {"nvidia": get_backend("nvidia").read_pool([MIG_NODE], []).to_json()}}
    verdict = price_json(
        get_backend("nvidia"), GpuSlice.parse("1x12Gi"), [], offer_from_pool(pool, "nvidia", None)
    )
    assert verdict["charges"][0]["resource"] == "nvidia.com/mig-2g.20gb"
    assert verdict["isolation"]["label"] == "hardware partition"


DRA_KEY = "gpu.nvidia.com.deviceclass.resource.k8s.io/devices"
DRA_SLICE = {
    "spec": {
        "driver": "gpu.nvidia.com",
        "nodeName": "d1",
        "pool": {"name": "d1", "generation": 1, "resourceSliceCount": 1},
        "devices": [
            {
                "name": f"gpu-{i}",
                "attributes": {"productName": {"string": "NVIDIA A100-SXM4-40GB"}},
                "capacity": {"memory": {"value": "40Gi"}},
            }
            for i in range(2)
        ]
        + [
            {
                "name": "gpu-2",
                "attributes": {"productName": {"string": "NVIDIA L4"}},
                "capacity": {"memory": {"value": "16Gi"}},
                "allowMultipleAllocations": True,
            }
        ],
    }
}


def _claim(device: str, memory: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "request": "gpu",
        "driver": "gpu.nvidia.com",
        "pool": "d1",
        "device": device,
    }
    if memory:
        result["consumedCapacity"] = {"memory": memory}
    return {"status": {"allocation": {"devices": {"results": [result]}}}}


async def test_the_dra_pool_is_read_from_resource_slices_and_allocated_claims() -> None:
    claims = [_claim("gpu-0"), _claim("gpu-2", "12Gi"), _claim("gpu-2", "2Gi")]
    kube = FakeKube({"Node": [node("d1")], "ResourceSlice": [DRA_SLICE], "ResourceClaim": claims})
    both = ["dra", "dra-consumable-capacity"]
    reader = PoolReader("kubernetes", kube=lambda: kube, gpu_backends=both)  # type: ignore[arg-type,return-value]
    pool = await reader.read()
    assert pool["gpu_backends"] == both
    assert offered([], [], [DRA_SLICE]) == both  # what the slices offer
    gpus = {g["id"]: g for g in pool["gpu_pools"]["dra"]["gpus"]}
    assert (gpus["d1/gpu-0"]["used_memory_mib"], gpus["d1/gpu-0"]["tasks"]) == (40960, 1)
    assert (gpus["d1/gpu-1"]["used_memory_mib"], gpus["d1/gpu-1"]["tasks"]) == (0, 0)
    assert (gpus["d1/gpu-2"]["used_memory_mib"], gpus["d1/gpu-2"]["tasks"]) == (14336, 2)
    assert gpus["d1/gpu-2"]["model"] == "NVIDIA L4"
    (resource,) = pool["gpu_pools"]["dra"]["resources"]
    assert (resource["node"], resource["allocatable"], resource["used"]) == ("d1", 3, 2)
    assert offer_from_pool(pool, "dra", None).per_gpu_memory_bytes == 16 << 30


async def test_a_dra_pool_without_readable_claims_shows_devices_not_use() -> None:
    forbidden = KubeApiError("forbidden", status=403, reason="Forbidden")
    kube = FakeKube({"ResourceSlice": [DRA_SLICE], "ResourceClaim": forbidden})
    reader = PoolReader("kubernetes", kube=lambda: kube, gpu_backends=["dra"])  # type: ignore[arg-type,return-value]
    pool = await reader.read()
    assert {g["used_memory_mib"] for g in pool["gpu_pools"]["dra"]["gpus"]} == {None}
    assert pool["gpu_pools"]["dra"]["warnings"] == [
        "ResourceClaims could not be read: devices are shown without their use"
    ]


def test_dra_quota_counts_devices_and_says_so() -> None:
    entries = quotas_json(["dra"], [_quota({DRA_KEY: "1"}, {DRA_KEY: "1"})])["dra"]
    (entry,) = entries
    assert entry["note"].startswith("DRA quota counts devices, not memory")
    verdict = price_json(get_backend("dra"), GpuSlice.parse("1x8Gi"), entries, Offer())
    assert verdict["fits"] is False
    assert verdict["reason"] == (
        f"1 GPU × 8Gi each costs 1 devices of gpu.nvidia.com but only 0 of 1 remain "
        f"(ResourceQuota gpu on {DRA_KEY}); DRA quota counts devices, not memory: a 1x8Gi claim "
        "costs one whole device of its class"
    )
    # a key of another DeviceClass (an operator's own) belongs to the dra backends too
    other = quotas_json(["dra"], [_quota({"a100.deviceclass.resource.k8s.io/devices": "4"}, {})])
    assert other["dra"][0]["key"] == "a100.deviceclass.resource.k8s.io/devices"


async def test_the_quota_message_names_dra_quota_when_bitfusion_has_none() -> None:
    kube = FakeKube({"ResourceQuota": [_quota({DRA_KEY: "1"}, {DRA_KEY: "1"})]})
    read = await QuotaReader("kubernetes", namespace="ns", kube=lambda: kube).read()  # type: ignore[arg-type,return-value]
    assert read["has_quota"] is False
    assert read["message"] == (
        f"Namespace ns does not limit bitfusion.io/gpu; {DRA_KEY}: 0 of 1 remain (ResourceQuota "
        "gpu); DRA quota counts devices, not memory: a 1x8Gi claim costs one whole device of its "
        "class."
    )


async def test_without_a_configured_dra_backend_no_dra_object_is_listed() -> None:
    kube = FakeKube({"Node": [HAMI_NODE]})
    await PoolReader("kubernetes", kube=lambda: kube).read()  # type: ignore[arg-type,return-value]
    assert {kind for kind, _ in kube.calls} == {"Node", "Pod"}  # no ResourceSlice: no 403 to log
