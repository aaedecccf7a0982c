"""Preferred allocation packs units onto the fewest GPUs of one server; Allocate's envs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bf_jupyter.cluster.deviceplugin.allocation import allocation_envs, preferred_allocation


def units(server: int, gpu: int, first: int, last: int) -> list[str]:
    return [f"s{server}-g{gpu}-u{u}" for u in range(first, last)]


def gpus_of(device_ids: list[str]) -> set[str]:
    return {device.rsplit("-", 1)[0] for device in device_ids}


def test_a_request_that_fits_one_gpu_takes_the_tightest_fit() -> None:
    available = units(0, 0, 0, 100) + units(0, 1, 40, 100) + units(0, 2, 70, 100)

    chosen = preferred_allocation(available=available, must_include=[], size=50)

    assert chosen == units(0, 1, 40, 90)


def test_a_request_larger_than_a_gpu_uses_the_fewest_gpus() -> None:
    available = units(0, 0, 80, 100) + units(0, 1, 0, 100) + units(0, 2, 50, 100)

    chosen = preferred_allocation(available=available, must_include=[], size=150)

    assert gpus_of(chosen) == {"s0-g1", "s0-g2"}
    assert len(chosen) == 150


def test_a_server_that_holds_the_whole_request_wins_over_a_larger_split() -> None:
    # server 0 has more free units in total but needs three GPUs; server 1 needs two
    available = (
        units(0, 0, 40, 100)
        + units(0, 1, 40, 100)
        + units(0, 2, 40, 100)
        + units(1, 0, 0, 100)
        + units(1, 1, 50, 100)
    )

    chosen = preferred_allocation(available=available, must_include=[], size=150)

    assert gpus_of(chosen) == {"s1-g0", "s1-g1"}


def test_must_include_units_stay_and_their_gpu_is_filled_first() -> None:
    available = units(0, 0, 0, 100) + units(1, 0, 0, 100)

    chosen = preferred_allocation(available=available, must_include=["s1-g0-u3"], size=5)

    assert chosen == ["s1-g0-u3", "s1-g0-u0", "s1-g0-u1", "s1-g0-u2", "s1-g0-u4"]


def test_a_request_no_server_can_hold_spills_over_largest_first() -> None:
    available = units(0, 0, 0, 60) + units(1, 0, 0, 100)

    chosen = preferred_allocation(available=available, must_include=[], size=130)

    assert chosen[:100] == units(1, 0, 0, 100)
    assert chosen[100:] == units(0, 0, 0, 30)


def test_foreign_ids_are_used_only_when_ours_run_out() -> None:
    chosen = preferred_allocation(
        available=["other-1", *units(0, 0, 0, 2)], must_include=[], size=3
    )

    assert chosen == [*units(0, 0, 0, 2), "other-1"]


@given(
    free=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 9)), unique=True),
    size=st.integers(0, 40),
    data=st.data(),
)
def test_the_answer_is_always_a_valid_choice(
    free: list[tuple[int, int, int]], size: int, data: st.DataObject
) -> None:
    available = [f"s{s}-g{g}-u{u}" for s, g, u in free]
    must = (
        data.draw(st.lists(st.sampled_from(available), unique=True, max_size=size))
        if available
        else []
    )

    chosen = preferred_allocation(available=available, must_include=must, size=size)

    assert len(chosen) == len(set(chosen))
    assert set(must) <= set(chosen) <= set(available)
    assert len(chosen) == min(size, len(available))


def test_allocate_envs_count_units_and_spread_them_per_gpu() -> None:
    envs = allocation_envs(units(0, 1, 0, 50) + units(0, 0, 0, 100))

    assert envs == {"BF_JUPYTER_GPU_UNITS": "150", "BF_JUPYTER_GPU_SHARES": "s0-g0:100,s0-g1:50"}


def test_allocate_envs_refuse_an_id_the_plugin_never_made() -> None:
    with pytest.raises(ValueError, match="device ID 'nvidia0' is not one of ours"):
        allocation_envs(["s0-g0-u0", "nvidia0"])
