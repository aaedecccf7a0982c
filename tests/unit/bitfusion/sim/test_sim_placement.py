"""Where a slice goes: one server, memory accounting per GPU, best fit, clear refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bf_jupyter.bitfusion.sim.errors import CannotServe
from bf_jupyter.bitfusion.sim.placement import Gpu, Pool, Server, memory_needed, place
from bf_jupyter.slice import Filter, GpuSlice


def _pool(*servers: list[int]) -> Pool:
    return Pool(
        tuple(
            Server(
                i,
                f"sim-{i}",
                f"host-{i}",
                tuple(Gpu(g, f"GPU {mib}", mib) for g, mib in enumerate(gpus)),
                cuda_version="12.4",
            )
            for i, gpus in enumerate(servers)
        ),
        simulated=True,
        source="test",
    )


def test_a_fraction_takes_that_share_of_each_gpus_memory_rounded_down() -> None:
    assert memory_needed(GpuSlice(1, 30), Gpu(0, "x", 16384)) == 4915
    assert memory_needed(GpuSlice(1, 50), Gpu(0, "x", 16160)) == 8080
    assert memory_needed(GpuSlice(1, 1), Gpu(0, "x", 50)) == 1  # never zero
    assert memory_needed(GpuSlice(1, memory_bytes=8 << 30), Gpu(0, "x", 16384)) == 8192


def test_slices_pack_onto_the_fullest_gpu_that_still_fits_them() -> None:
    pool = _pool([16384, 16384])
    first = place(pool, GpuSlice(1, 30), {})
    assert [g.index for g in first.gpus] == [0]
    second = place(pool, GpuSlice(1, 30), {(0, 0): 4915})
    assert [g.index for g in second.gpus] == [0]
    spill = place(pool, GpuSlice(1, 30), {(0, 0): 14745})
    assert [g.index for g in spill.gpus] == [1]


def test_all_gpus_of_a_slice_come_from_one_server() -> None:
    pool = _pool([16384], [16384, 16384])
    placement = place(pool, GpuSlice(2, 50), {})
    assert placement.server.index == 1
    assert [g.index for g in placement.gpus] == [0, 1]


def test_a_slice_that_could_never_fit_is_refused_as_permanent() -> None:
    with pytest.raises(CannotServe) as refused:
        place(_pool([16384, 16384]), GpuSlice(3, 10), {})
    assert refused.value.permanent
    assert "no server has 3 GPUs large enough" in str(refused.value)


def test_a_full_pool_is_refused_for_now_saying_what_was_asked_and_what_is_free() -> None:
    with pytest.raises(CannotServe) as refused:
        place(_pool([16384, 16384]), GpuSlice(1, 50), {(0, 0): 10000, (0, 1): 9000})
    assert not refused.value.permanent
    assert str(refused.value) == (
        "cannot serve 1 GPU × 50 % of each GPU (8192 MiB per GPU) now: free: "
        "server 0 [sim-0] GPU 0 6384 of 16384 MiB, GPU 1 7384 of 16384 MiB"
    )


@pytest.mark.parametrize(
    ("term", "server", "gpu"),
    [
        ("server.hostname=HOST-1", 1, 0),
        ("server.addr=sim-1", 1, 0),
        ("server.cuda-version=12", 0, 1),  # best fit: the smaller GPU
        ("device.id=1", 0, 1),
        ("device.name=gpu 40960", 1, 0),
        ("device.phy-memory=40Gi", 1, 0),
        ("device.phy-memory=8192", 0, 1),
        ("server.has-rdma=false", 0, 1),
    ],
)
def test_filters_select_servers_and_gpus(term: str, server: int, gpu: int) -> None:
    pool = _pool([16384, 8192], [40960])
    placement = place(pool, GpuSlice(1, 10, filters=(Filter.parse(term),)), {})
    assert (placement.server.index, placement.gpus[0].index) == (server, gpu)


def test_a_filter_that_matches_no_server_is_refused_naming_the_servers() -> None:
    with pytest.raises(CannotServe) as refused:
        place(_pool([16384]), GpuSlice(1, 10, filters=(Filter.parse("server.has-rdma=yes"),)), {})
    assert refused.value.permanent
    assert "no server matches server.has-rdma=yes (servers: server 0 [sim-0]" in str(refused.value)


slices = st.builds(
    lambda amount, percent, mib: (
        GpuSlice(amount, percent) if mib is None else GpuSlice(amount, memory_bytes=mib << 20)
    ),
    st.integers(1, 3),
    st.integers(1, 100),
    st.one_of(st.none(), st.integers(1, 20000)),
)
pools = st.lists(st.lists(st.integers(1, 40000), min_size=1, max_size=4), min_size=1, max_size=3)


@given(pools, st.lists(slices, max_size=25))
def test_placements_never_exceed_a_gpu_and_refuse_only_what_does_not_fit(
    shape: list[list[int]], requests: list[GpuSlice]
) -> None:
    pool = _pool(*shape)
    used: dict[tuple[int, int], int] = {}
    for gpu_slice in requests:
        try:
            placement = place(pool, gpu_slice, used)
        except CannotServe as refusal:
            # then no server had enough GPUs with enough free memory (or, if permanent, total)
            for server in pool.servers:
                fits = [
                    g
                    for g in server.gpus
                    if memory_needed(gpu_slice, g)
                    <= g.memory_mib
                    - (0 if refusal.permanent else used.get((server.index, g.index), 0))
                ]
                assert len(fits) < gpu_slice.amount
            continue
        assert len(placement.gpus) == gpu_slice.amount
        assert len({g.index for g in placement.gpus}) == gpu_slice.amount
        assert all(g in placement.server.gpus for g in placement.gpus)
        for gpu, mib in zip(placement.gpus, placement.memory_mib, strict=True):
            key = (placement.server.index, gpu.index)
            used[key] = used.get(key, 0) + mib
            assert used[key] <= gpu.memory_mib
