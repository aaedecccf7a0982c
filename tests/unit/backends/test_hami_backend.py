"""The hami backend: HAMi v2.10's resource names, annotations, quota keys and pool annotations."""

from __future__ import annotations

import pytest
from hypothesis import given

from bf_jupyter.backends import SliceRefused, get_backend
from bf_jupyter.backends.base import Offer
from bf_jupyter.backends.hami import (
    ALLOCATED_ANNOTATION,
    REGISTER_ANNOTATION,
    parse_allocations,
    parse_registration,
)
from bf_jupyter.slice import GpuSlice
from tests.unit.backends.conftest import hami_register, node, pod
from tests.unit.backends.strategies import memory_slices, percent_slices

HAMI = get_backend("hami")
OFFER = Offer(per_gpu_memory_bytes=16 << 30)


@pytest.mark.parametrize(
    ("text", "limits"),
    [
        (
            "1x8Gi cores=30",
            {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8192", "nvidia.com/gpucores": "30"},
        ),
        ("2x50%", {"nvidia.com/gpu": "2", "nvidia.com/gpumem-percentage": "50"}),
        (
            "1",
            {
                "nvidia.com/gpu": "1",
                "nvidia.com/gpumem-percentage": "100",
                "nvidia.com/gpucores": "100",
            },
        ),
    ],
)
def test_render_uses_hamis_resource_names(text: str, limits: dict[str, str]) -> None:
    rendering = HAMI.render(GpuSlice.parse(text))
    assert dict(rendering.limits) == limits
    assert rendering.scheduler_name == "hami-scheduler"


def test_filters_become_hamis_type_and_uuid_annotations() -> None:
    gpu_slice = GpuSlice.parse(
        "1x8Gi device.name=A100 device.name=H100 device.name!=T4 device.uuid=GPU-1 device.uuid!=GPU-2"
    )
    assert dict(HAMI.render(gpu_slice).annotations) == {
        "nvidia.com/use-gputype": "A100,H100",
        "nvidia.com/nouse-gputype": "T4",
        "nvidia.com/use-gpuuuid": "GPU-1",
        "nvidia.com/nouse-gpuuuid": "GPU-2",
    }


@given(percent_slices | memory_slices)
def test_every_rendered_limit_is_priced(gpu_slice: GpuSlice) -> None:
    gpu_slice = GpuSlice(
        gpu_slice.amount, gpu_slice.percent, gpu_slice.memory_bytes, (), gpu_slice.cores
    )
    limits = HAMI.render(gpu_slice, OFFER).limits
    charges = {c.resource: c for c in HAMI.price(gpu_slice, OFFER)}
    assert charges["nvidia.com/gpu"].amount == int(limits["nvidia.com/gpu"])
    if "nvidia.com/gpumem" in limits:
        assert charges["nvidia.com/gpumem"].amount == gpu_slice.amount * int(
            limits["nvidia.com/gpumem"]
        )
    else:
        percent = int(limits["nvidia.com/gpumem-percentage"])
        assert charges["nvidia.com/gpumem"].amount == gpu_slice.amount * -(-16384 * percent // 100)
    if "nvidia.com/gpucores" in limits:
        assert charges["nvidia.com/gpucores"].amount == gpu_slice.amount * int(
            limits["nvidia.com/gpucores"]
        )
    else:
        assert "nvidia.com/gpucores" not in charges
    for charge in charges.values():
        assert set(charge.quota_keys) <= set(HAMI.quota_keys())


def test_quota_keys_are_hamis_limits_and_the_api_servers_count() -> None:
    assert set(HAMI.quota_keys()) == {
        "limits.nvidia.com/gpumem",
        "limits.nvidia.com/gpucores",
        "limits.nvidia.com/gpu",
        "requests.nvidia.com/gpu",
    }


def test_a_percent_slice_without_known_memory_prices_only_count() -> None:
    charges = HAMI.price(GpuSlice.parse("1x50%"))
    assert [c.resource for c in charges] == ["nvidia.com/gpu"]


@pytest.mark.parametrize(
    ("text", "field", "alternative"),
    [
        ("mig-1g.10gb", "mig-profile", "a memory share such as 1x8Gi"),
        ("1xshared", "shared", "a percent such as 1x50%"),
        ("1 server.hostname=gpu1", "filter", "device.name=A100"),
        ("1 'device.name=A100,V100'", "filter", "repeat the term"),
    ],
)
def test_refusals_name_the_field_and_the_alternative(
    text: str, field: str, alternative: str
) -> None:
    with pytest.raises(SliceRefused) as caught:
        HAMI.render(GpuSlice.parse(text))
    assert caught.value.field == field
    assert alternative in caught.value.accepted


def test_registration_reads_the_json_list_and_the_older_colon_form() -> None:
    assert parse_registration(hami_register([("GPU-a", 16384, "NVIDIA-A100")]))[0] == {
        "id": "GPU-a",
        "count": 10,
        "devmem": 16384,
        "devcore": 100,
        "type": "NVIDIA-A100",
        "health": True,
    }
    old = "GPU-a,10,16384,100,NVIDIA-A100,0,true:GPU-b,10,16384,100,NVIDIA-A100,0,true,1,hami-core:"
    assert [d["id"] for d in parse_registration(old)] == ["GPU-a", "GPU-b"]
    with pytest.raises(ValueError, match="has 3 fields"):
        parse_registration("a,b,c:")


def test_allocations_sum_every_container_and_skip_garbage() -> None:
    text = "GPU-a,NVIDIA,4096,30:GPU-b,NVIDIA,4096,30:;GPU-a,NVIDIA,1024,0:;junk;GPU-c,NVIDIA,x,1:"
    assert parse_allocations(text) == [
        ("GPU-a", 4096, 30),
        ("GPU-b", 4096, 30),
        ("GPU-a", 1024, 0),
    ]


def test_pool_is_per_gpu_memory_and_cores_in_use() -> None:
    nodes = [
        node(
            "n1",
            allocatable={"nvidia.com/gpu": "20"},
            annotations={
                REGISTER_ANNOTATION: hami_register(
                    [("GPU-a", 16384, "A100"), ("GPU-b", 16384, "A100")]
                )
            },
        ),
        node("n2", annotations={REGISTER_ANNOTATION: "not json ["}),
    ]
    pods = [
        pod(
            "n1",
            {"nvidia.com/gpu": "1"},
            annotations={ALLOCATED_ANNOTATION: "GPU-a,NVIDIA,8192,30:;"},
        ),
        pod(
            "n1",
            {"nvidia.com/gpu": "1"},
            annotations={ALLOCATED_ANNOTATION: "GPU-a,NVIDIA,4096,20:;"},
        ),
    ]
    pool = HAMI.read_pool(nodes, pods)
    a, b = pool.gpus
    assert (a.id, a.used_memory_mib, a.used_cores, a.tasks, a.free_fraction) == (
        "GPU-a",
        12288,
        50,
        2,
        0.25,
    )
    assert (b.id, b.used_memory_mib, b.tasks) == ("GPU-b", 0, 0)
    assert [(r.node, r.allocatable, r.used) for r in pool.resources] == [("n1", 20, 2)]
    assert pool.warnings and "n2" in pool.warnings[0]
    assert pool.offer().per_gpu_memory_bytes == 16384 << 20
