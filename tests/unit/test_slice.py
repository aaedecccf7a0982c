"""The GPU-slice contract: parsing, rendering, quota units, and one clear error per rejection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bf_jupyter.contract import (
    ANNOTATION_FILTER,
    RESOURCE_AMOUNT,
    RESOURCE_MEMORY,
    RESOURCE_PERCENT,
    ManagementMode,
)
from bf_jupyter.quantity import MIB
from bf_jupyter.slice import FILTER_KEYS, MAX_AMOUNT, Filter, GpuSlice, SliceError, parse_filters

GIB = 1 << 30

filters = st.lists(
    st.builds(
        Filter,
        st.sampled_from(sorted(FILTER_KEYS)),
        st.text("abcdefghijklmnopqrstuvwxyz0123456789.-_:", min_size=1, max_size=12),
    ),
    max_size=3,
).map(tuple)
percent_slices = st.builds(
    GpuSlice, st.integers(1, MAX_AMOUNT), st.integers(1, 100), st.none(), filters
)
memory_slices = st.builds(
    lambda amount, mib, f: GpuSlice(amount, memory_bytes=mib * MIB, filters=f),
    st.integers(1, MAX_AMOUNT),
    st.integers(1, 1 << 20),
    filters,
)
slices = percent_slices | memory_slices


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", GpuSlice(1, 100)),
        ("1x50%", GpuSlice(1, 50)),
        ("1 x 50 %", GpuSlice(1, 50)),
        ("2×25%", GpuSlice(2, 25)),
        ("1x0.5", GpuSlice(1, 50)),
        ("1x1", GpuSlice(1, 100)),
        ("2x8Gi", GpuSlice(2, memory_bytes=8 * GIB)),
        ("2x8000Mi", GpuSlice(2, memory_bytes=8000 * MIB)),
        ("1x50% device.name=V100", GpuSlice(1, 50, filters=(Filter("device.name", "V100"),))),
        ("-n 1 -p 0.5", GpuSlice(1, 50)),
        ("-n 2 -m 8192", GpuSlice(2, memory_bytes=8 * GIB)),
        ("--num_gpus=2 --partial 0.25", GpuSlice(2, 25)),
        (
            "-n 1 --filter 'device.name=Tesla V100'",
            GpuSlice(1, 100, filters=(Filter("device.name", "Tesla V100"),)),
        ),
    ],
)
def test_parse_accepts_text_and_client_forms(text: str, expected: GpuSlice) -> None:
    assert GpuSlice.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "gpu-amount 0 is out of range: use 1–64"),
        ("1x150%", "gpu-percent 150 is out of range: use 1–100"),
        ("1x0%", "gpu-percent 0 is out of range: use 1–100"),
        ("-n 0", "-n 0 is out of range: use 1–64"),
        ("-n 1 -p 1.5", "-p 1.5 is out of range"),
        ("-n 1 -p 0.333", "-p 0.333 is not a whole percent"),
        ("-n 1 -p 0.5 -m 100", "-m 100 cannot be combined with -p"),
        ("-p 0.5", "-n is missing"),
        ("-n", "-n needs a value"),
        ("-n 1 --wait 3", "argument --wait is not a slice option"),
        ("1x50", "slice 50 has no unit"),
        ("abc", "gpu-amount abc is not a whole number"),
        ("1x8Gb", "gpu-memory 8Gb is not a memory quantity"),
        ("1x0.5Ki", "gpu-memory 0.5Ki is out of range"),
        ("", "slice is empty"),
        ("1x50% foo=bar", "filter foo is not a filter key"),
        ("1x50% device.name", "filter device.name is not KEY=VALUE"),
        ("1 'unbalanced", "cannot be split"),
    ],
)
def test_parse_refuses_with_field_value_and_accepted_forms(text: str, message: str) -> None:
    with pytest.raises(SliceError) as raised:
        GpuSlice.parse(text)
    assert message in str(raised.value)
    assert ":" in str(raised.value), "every refusal says what is accepted"


def test_client_args_use_the_shortest_exact_decimal() -> None:
    assert GpuSlice(1, 50).client_args() == ["-n", "1", "-p", "0.5"]
    assert GpuSlice(1, 100).client_args() == ["-n", "1", "-p", "1"]
    assert GpuSlice(3, 5).client_args() == ["-n", "3", "-p", "0.05"]
    assert GpuSlice(1, 10).client_args() == ["-n", "1", "-p", "0.1"]


def test_client_args_in_memory_mode_round_up_to_whole_mib_then_filters() -> None:
    given_slice = GpuSlice(2, memory_bytes=8 * 10**9, filters=(Filter("server.has-rdma", "true"),))
    assert given_slice.client_args() == [
        "-n",
        "2",
        "-m",
        "7630",
        "--filter",
        "server.has-rdma=true",
    ]


def test_quota_units_in_percent_and_memory_mode() -> None:
    assert GpuSlice(1, 50).quota_units() == 50
    assert GpuSlice(2, 60).quota_units() == 120
    assert GpuSlice(2, memory_bytes=8 * GIB).quota_units(16 * GIB) == 100
    assert GpuSlice(1, memory_bytes=1 * MIB).quota_units(16 * GIB) == 1, "rounds up"


def test_memory_mode_quota_without_per_gpu_memory_is_a_clear_refusal() -> None:
    with pytest.raises(SliceError, match="without the per-GPU memory"):
        GpuSlice(1, memory_bytes=8 * GIB).quota_units()
    with pytest.raises(SliceError, match="gpu-memory 32Gi exceeds the 16Gi of one GPU"):
        GpuSlice(1, memory_bytes=32 * GIB).quota_units(16 * GIB)


def test_from_resources_accepts_strings_and_integers_like_the_api() -> None:
    assert GpuSlice.from_resources({RESOURCE_AMOUNT: 1, RESOURCE_PERCENT: "50"}) == GpuSlice(1, 50)
    assert GpuSlice.from_resources({RESOURCE_AMOUNT: "2"}) == GpuSlice(2, 100)
    assert GpuSlice.from_resources({RESOURCE_AMOUNT: "1", RESOURCE_MEMORY: "8Gi"}) == GpuSlice(
        1, memory_bytes=8 * GIB
    )


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({RESOURCE_PERCENT: "50"}, "gpu-amount is missing beside bitfusion.io/gpu-percent"),
        ({RESOURCE_AMOUNT: "1", RESOURCE_PERCENT: "150"}, "gpu-percent 150 is out of range"),
        ({RESOURCE_AMOUNT: True}, "gpu-amount True is not a whole number"),
        ({RESOURCE_AMOUNT: 1.5}, "gpu-amount 1.5 is not a whole number"),
        ({RESOURCE_AMOUNT: "500m"}, "gpu-amount 500m is not a whole number"),
        (
            {RESOURCE_AMOUNT: "1", RESOURCE_PERCENT: "50", RESOURCE_MEMORY: "8Gi"},
            "cannot be combined",
        ),
        (
            {RESOURCE_AMOUNT: "1", RESOURCE_MEMORY: "lots"},
            "gpu-memory lots is not a memory quantity",
        ),
    ],
)
def test_from_resources_refuses_bad_values(resources: dict[str, object], message: str) -> None:
    with pytest.raises(SliceError, match=message):
        GpuSlice.from_resources(resources)


def test_from_container_merges_limits_requests_and_filter_annotation() -> None:
    container = {
        "name": "train",
        "resources": {"limits": {RESOURCE_AMOUNT: "1", RESOURCE_PERCENT: "50"}, "requests": {}},
    }
    annotations = {ANNOTATION_FILTER: "--filter device.name=V100 server.has-rdma=true"}
    assert GpuSlice.from_container(container, annotations) == GpuSlice(
        1, 50, filters=(Filter("device.name", "V100"), Filter("server.has-rdma", "true"))
    )
    assert (
        GpuSlice.from_container({"name": "sidecar", "resources": {"limits": {"cpu": "1"}}}) is None
    )
    assert GpuSlice.from_container({"name": "bare"}) is None


def test_from_container_refuses_limits_that_differ_from_requests() -> None:
    container = {
        "resources": {"limits": {RESOURCE_AMOUNT: "1"}, "requests": {RESOURCE_AMOUNT: "2"}},
    }
    with pytest.raises(SliceError, match="differs from requests"):
        GpuSlice.from_container(container)


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("all", ManagementMode.ALL),
        ("Yes", ManagementMode.ALL),
        ("y", ManagementMode.ALL),
        ("true", ManagementMode.ALL),
        ("on", ManagementMode.ALL),
        ("injection", ManagementMode.INJECTION),
        ("no", ManagementMode.NONE),
        ("", ManagementMode.NONE),
    ],
)
def test_management_mode_from_annotation(value: str, mode: ManagementMode) -> None:
    assert ManagementMode.from_annotations({"auto-management/bitfusion": value}) is mode


def test_parse_filters_reads_the_annotation_form() -> None:
    assert parse_filters("device.id=0 'device.name=Tesla V100'") == (
        Filter("device.id", "0"),
        Filter("device.name", "Tesla V100"),
    )


@given(slices)
def test_text_round_trip(gpu_slice: GpuSlice) -> None:
    assert GpuSlice.parse(gpu_slice.to_text()) == gpu_slice


@given(slices)
def test_client_args_round_trip(gpu_slice: GpuSlice) -> None:
    parsed = GpuSlice.from_client_args(gpu_slice.client_args())
    if gpu_slice.is_memory_mode:
        assert parsed.memory_mib == gpu_slice.memory_mib
    else:
        assert parsed == gpu_slice


@given(slices)
def test_resources_round_trip(gpu_slice: GpuSlice) -> None:
    resources = gpu_slice.to_resources()
    parsed = GpuSlice.from_resources(resources, filters=gpu_slice.filters)
    assert parsed == gpu_slice
    assert parsed.to_resources() == resources


@given(
    st.integers(1, MAX_AMOUNT), st.integers(1, 100), st.integers(1, MAX_AMOUNT), st.integers(1, 100)
)
def test_quota_units_are_positive_and_monotonic(a1: int, p1: int, a2: int, p2: int) -> None:
    small, large = GpuSlice(min(a1, a2), min(p1, p2)), GpuSlice(max(a1, a2), max(p1, p2))
    assert 0 < small.quota_units() <= large.quota_units()


@given(st.integers(1, MAX_AMOUNT), st.integers(1, 16 * 1024), st.integers(1, 16 * 1024))
def test_memory_quota_units_are_positive_and_monotonic(amount: int, m1: int, m2: int) -> None:
    per_gpu = 16 * GIB
    small = GpuSlice(amount, memory_bytes=min(m1, m2) * MIB).quota_units(per_gpu)
    large = GpuSlice(amount, memory_bytes=max(m1, m2) * MIB).quota_units(per_gpu)
    assert 0 < small <= large <= amount * 100
