"""The nvidia backends: whole GPUs, MIG (mixed strategy) and time-slicing/MPS replicas."""

from __future__ import annotations

import pytest
from hypothesis import given

from bf_jupyter.backends import SliceRefused, get_backend
from bf_jupyter.backends.base import Offer
from bf_jupyter.backends.nvidia import mig_profile_for
from bf_jupyter.slice import GpuSlice
from tests.unit.backends.conftest import node, pod
from tests.unit.backends.strategies import MIG_PROFILES, any_slices

GIB = 1 << 30
OFFER = Offer(mig_profiles=MIG_PROFILES)
NVIDIA_NAMES = ["nvidia", "nvidia-time-slicing", "nvidia-mps", "nvidia-mps-renamed"]


@pytest.mark.parametrize(
    ("backend", "text", "limits", "isolation"),
    [
        ("nvidia", "2", {"nvidia.com/gpu": "2"}, "whole GPU"),
        ("nvidia", "mig-1g.10gb", {"nvidia.com/mig-1g.10gb": "1"}, "hardware partition"),
        ("nvidia", "1x10Gi", {"nvidia.com/mig-1g.10gb": "1"}, "hardware partition"),
        ("nvidia", "1x11Gi", {"nvidia.com/mig-2g.20gb": "1"}, "hardware partition"),
        ("nvidia-time-slicing", "1xshared", {"nvidia.com/gpu": "1"}, "no isolation"),
        ("nvidia-mps", "1xshared", {"nvidia.com/gpu": "1"}, "memory cap and thread share"),
        (
            "nvidia-mps-renamed",
            "1xshared",
            {"nvidia.com/gpu.shared": "1"},
            "memory cap and thread share",
        ),
        ("nvidia-time-slicing-renamed", "1", {"nvidia.com/gpu": "1"}, "whole GPU"),
    ],
)
def test_render_takes_the_matching_resource(
    backend: str, text: str, limits: dict[str, str], isolation: str
) -> None:
    gpu_backend = get_backend(backend)
    gpu_slice = GpuSlice.parse(text)
    assert dict(gpu_backend.render(gpu_slice, OFFER).limits) == limits
    assert gpu_backend.isolation_of(gpu_slice, OFFER).label == isolation


def test_product_filter_becomes_a_node_selector_on_gfds_label() -> None:
    rendering = get_backend("nvidia").render(GpuSlice.parse("1 device.name=Tesla-T4"))
    assert dict(rendering.node_selector) == {"nvidia.com/gpu.product": "Tesla-T4"}


@pytest.mark.parametrize("name", NVIDIA_NAMES)
@given(gpu_slice=any_slices)
def test_render_and_price_agree_or_both_refuse(name: str, gpu_slice: GpuSlice) -> None:
    backend = get_backend(name)
    try:
        limits = backend.render(gpu_slice, OFFER).limits
    except SliceRefused as refused:
        with pytest.raises(SliceRefused) as again:
            backend.price(gpu_slice, OFFER)
        assert str(again.value) == str(refused)
        assert refused.accepted and refused.field
        return
    (charge,) = backend.price(gpu_slice, OFFER)
    assert dict(limits) == {charge.resource: str(charge.amount)}
    assert charge.quota_keys == (f"requests.{charge.resource}",)


@pytest.mark.parametrize(
    ("backend", "text", "field", "sentence"),
    [
        (
            "nvidia-time-slicing",
            "1x50%",
            "gpu-percent",
            "gpu-percent 50% cannot be honoured by NVIDIA time-slicing: ask for a memory share such "
            "as 1x8Gi, a MIG profile such as mig-1g.10gb or one shared replica, 1xshared",
        ),
        (
            "nvidia-time-slicing",
            "1",
            "gpu-amount",
            "gpu-amount 1 (whole GPUs) cannot be honoured by NVIDIA time-slicing: ask for a memory "
            "share such as 1x8Gi, a MIG profile such as mig-1g.10gb or one shared replica, 1xshared",
        ),
        (
            "nvidia",
            "1xshared",
            "shared",
            "shared shared cannot be honoured by NVIDIA device plugin: ask for whole GPUs such as 1, "
            "a memory share such as 1x8Gi or a MIG profile such as mig-1g.10gb",
        ),
        ("nvidia-mps", "2xshared", "gpu-amount", None),
        ("nvidia", "1x8Gi cores=30", "cores", None),
        ("nvidia", "1 device.name!=T4", "filter", None),
    ],
)
def test_refusals_are_one_sentence_with_the_alternative(
    backend: str, text: str, field: str, sentence: str | None
) -> None:
    with pytest.raises(SliceRefused) as caught:
        get_backend(backend).render(GpuSlice.parse(text), OFFER)
    assert caught.value.field == field
    if sentence is not None:
        assert str(caught.value) == sentence


def test_a_memory_slice_with_no_mig_offered_says_what_is_offered() -> None:
    with pytest.raises(
        SliceRefused, match=r"fits no MIG profile the cluster offers \(offered: none\)"
    ):
        get_backend("nvidia").render(GpuSlice.parse("1x10Gi"))
    with pytest.raises(SliceRefused, match="fits no MIG profile"):
        get_backend("nvidia").render(GpuSlice.parse("1x100Gi"), OFFER)


def test_smallest_profile_prefers_memory_then_slices() -> None:
    assert (
        mig_profile_for(5 * GIB, ["mig-2g.10gb", "mig-1g.10gb", "mig-1g.5gb+me"]) == "mig-1g.5gb+me"
    )
    assert mig_profile_for(6 * GIB, ["mig-2g.10gb", "mig-1g.10gb"]) == "mig-1g.10gb"
    assert mig_profile_for(6 * GIB, []) is None


def test_pool_reads_gpus_mig_and_shared_resources() -> None:
    nodes = [
        node(
            "n1",
            allocatable={
                "nvidia.com/gpu": "2",
                "nvidia.com/mig-1g.10gb": "7",
                "nvidia.com/gpu.shared": "0",
            },
            labels={
                "nvidia.com/gpu.count": "2",
                "nvidia.com/gpu.product": "A100",
                "nvidia.com/gpu.memory": "81920",
            },
        )
    ]
    pods = [pod("n1", {"nvidia.com/mig-1g.10gb": "1"}), pod("n1", {"nvidia.com/gpu": "1"})]
    pool = get_backend("nvidia").read_pool(nodes, pods)
    assert [(r.resource, r.allocatable, r.used) for r in pool.resources] == [
        ("nvidia.com/gpu", 2, 1),
        ("nvidia.com/mig-1g.10gb", 7, 1),
    ]
    assert [g.memory_mib for g in pool.gpus] == [81920, 81920]
    assert pool.offer().mig_profiles == ("mig-1g.10gb",)
