"""The slice contract's newer shares: compute (``cores=30``), MIG profiles and shared replicas."""

from __future__ import annotations

import pytest
from hypothesis import given

from bf_jupyter.quantity import MIB
from bf_jupyter.slice import Filter, GpuSlice, SliceError
from tests.unit.backends.strategies import any_slices

GIB = 1 << 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1x8Gi cores=30", GpuSlice(1, memory_bytes=8 * GIB, cores=30)),
        ("1x50% cores=30", GpuSlice(1, 50, cores=30)),
        ("1 cores=100", GpuSlice(1, 100, cores=100)),
        ("mig-1g.10gb", GpuSlice(1, mig_profile="mig-1g.10gb")),
        ("2xmig-3g.40gb", GpuSlice(2, mig_profile="mig-3g.40gb")),
        ("1xMIG-1g.10gb+me", GpuSlice(1, mig_profile="mig-1g.10gb+me")),
        ("1xshared", GpuSlice(1, shared=True)),
        ("shared", GpuSlice(1, shared=True)),
        (
            "1x8Gi device.name!=T4",
            GpuSlice(1, memory_bytes=8 * GIB, filters=(Filter("device.name", "T4", True),)),
        ),
        ("1 device.uuid=GPU-0a1b", GpuSlice(1, filters=(Filter("device.uuid", "GPU-0a1b"),))),
    ],
)
def test_parse_reads_the_new_shares(text: str, expected: GpuSlice) -> None:
    assert GpuSlice.parse(text) == expected


@given(any_slices)
def test_every_slice_round_trips_through_its_text(gpu_slice: GpuSlice) -> None:
    assert GpuSlice.parse(gpu_slice.to_text()) == gpu_slice


def test_text_puts_cores_between_share_and_filters() -> None:
    gpu_slice = GpuSlice(
        1, memory_bytes=8 * GIB, cores=30, filters=(Filter("device.name", "A100"),)
    )
    assert gpu_slice.to_text() == "1x8Gi cores=30 device.name=A100"
    assert gpu_slice.describe() == "1 GPU × 8Gi each, 30 % of compute, device.name=A100"


@pytest.mark.parametrize(
    ("text", "field", "value", "accepted"),
    [
        ("1x8Gi cores=0", "cores", "0", "use 1–100"),
        ("1x8Gi cores=150", "cores", "150", "use 1–100"),
        ("1x8Gi cores=lots", "cores", "lots", "use 1–100, e.g. cores=30"),
        ("mig-1g.10", "mig-profile", "mig-1g.10", "use mig-<slices>g.<GB>gb, e.g. mig-1g.10gb"),
        (
            "mig-1g.10gb cores=30",
            "cores",
            "30",
            "drop cores=, or use a share such as 1x8Gi cores=30",
        ),
        ("1xshared cores=30", "cores", "30", "drop cores=, or use a share such as 1x8Gi cores=30"),
        ("1 device.size!=3", "filter", "device.size", None),
    ],
)
def test_bad_shares_name_field_value_and_accepted(
    text: str, field: str, value: str, accepted: str | None
) -> None:
    with pytest.raises(SliceError) as caught:
        GpuSlice.parse(text)
    assert caught.value.field == field
    assert caught.value.value == value
    if accepted is not None:
        assert caught.value.accepted == accepted
    assert str(caught.value).startswith(f"{field} {value}")


def test_a_mig_profile_beside_a_percent_is_refused() -> None:
    with pytest.raises(SliceError, match="cannot be combined with another share"):
        GpuSlice(1, 50, mig_profile="mig-1g.10gb")


@pytest.mark.parametrize("text", ["mig-1g.10gb", "1xshared"])
def test_bitfusion_renderings_refuse_shares_bitfusion_lacks(text: str) -> None:
    gpu_slice = GpuSlice.parse(text)
    for render in (gpu_slice.to_resources, gpu_slice.client_args, gpu_slice.quota_units):
        with pytest.raises(SliceError, match="has no Bitfusion form"):
            render()


def test_mig_memory_comes_from_the_profile_name() -> None:
    assert GpuSlice.parse("mig-2g.20gb").mig_memory_gb == 20
    assert GpuSlice(1, memory_bytes=MIB).mig_memory_gb is None
