"""The bitfusion backend: today's rendering and pricing, moved behind the interface unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given

from bf_jupyter.backends import SliceRefused, get_backend
from bf_jupyter.backends.base import Offer
from bf_jupyter.contract import ANNOTATION_FILTER, ANNOTATION_MANAGEMENT, QUOTA_RESOURCE
from bf_jupyter.slice import GpuSlice
from tests.unit.backends.conftest import node, pod
from tests.unit.backends.strategies import memory_slices, percent_slices

BITFUSION = get_backend("bitfusion")
GIB = 1 << 30


def test_render_is_the_contract_keys_and_the_webhook_annotations() -> None:
    rendering = BITFUSION.render(GpuSlice.parse("2x8Gi device.name=V100"))
    assert dict(rendering.limits) == {
        "bitfusion.io/gpu-amount": "2",
        "bitfusion.io/gpu-memory": "8Gi",
    }
    assert dict(rendering.annotations) == {
        ANNOTATION_MANAGEMENT: "all",
        ANNOTATION_FILTER: "device.name=V100",
    }
    assert rendering.scheduler_name is None


@given(percent_slices | memory_slices)
def test_render_and_price_agree_with_the_slice_contract(gpu_slice: GpuSlice) -> None:
    if gpu_slice.cores is not None or any(
        f.negated or f.key == "device.uuid" for f in gpu_slice.filters
    ):
        with pytest.raises(SliceRefused):
            BITFUSION.render(gpu_slice)
        return
    assert dict(BITFUSION.render(gpu_slice).limits) == gpu_slice.to_resources()
    memory = 96 * 1024 << 20
    (charge,) = BITFUSION.price(gpu_slice, Offer(per_gpu_memory_bytes=memory))
    assert charge.resource == QUOTA_RESOURCE
    assert charge.amount == gpu_slice.quota_units(memory)
    assert charge.quota_keys == ("requests.bitfusion.io/gpu", "bitfusion.io/gpu")


@pytest.mark.parametrize(
    ("text", "field", "alternative"),
    [
        ("1x8Gi cores=30", "cores", "use the hami backend"),
        ("mig-1g.10gb", "mig-profile", "a percent such as 1x50%"),
        ("1xshared", "shared", "a memory share such as 1x8Gi"),
        ("1 device.uuid=GPU-1", "filter", "use KEY=VALUE with device.id"),
        ("1 device.name!=T4", "filter", "use KEY=VALUE with"),
    ],
)
def test_refusals_name_the_field_and_the_alternative(
    text: str, field: str, alternative: str
) -> None:
    with pytest.raises(SliceRefused) as caught:
        BITFUSION.render(GpuSlice.parse(text))
    assert caught.value.field == field
    assert alternative in caught.value.accepted


def test_pool_is_each_nodes_units_and_what_its_pods_request() -> None:
    nodes = [
        node("a", allocatable={QUOTA_RESOURCE: "200"}),
        node("b"),  # no Bitfusion units: not in the pool
    ]
    pods = [pod("a", {QUOTA_RESOURCE: "50"}), pod("a", requests={QUOTA_RESOURCE: "25"}), pod("b")]
    pool = BITFUSION.read_pool(nodes, pods)
    assert [(r.node, r.resource, r.allocatable, r.used) for r in pool.resources] == [
        ("a", QUOTA_RESOURCE, 200, 75)
    ]
    assert BITFUSION.read_pool(nodes, None).resources[0].used is None
