"""Device IDs and advertisements: stable names, equality that means "the kubelet sees the same"."""

from __future__ import annotations

import pytest

from bf_jupyter.bitfusion.records import parse_health, parse_list_gpus
from bf_jupyter.cluster.deviceplugin.inventory import (
    Advertisement,
    UnitId,
    advertise,
    advertise_unreachable,
)

LISTING = parse_list_gpus(
    " - server 0 [10.0.0.1:56001]: running 0 tasks\n"
    "   |- GPU 0: free memory 100 MiB / 16160 MiB\n"
    "   |- GPU 1: free memory 16160 MiB / 16160 MiB\n"
    " - server 1 [10.0.0.2:56001]: running 0 tasks\n"
    "   |- GPU 0: free memory 16160 MiB / 16160 MiB\n"
)
HEALTHY = parse_health("server 10.0.0.1:56001 reachable: OK\n", 0)
FAILED = parse_health("server 10.0.0.1:56001 reachable: FAIL\n", 1)


def test_unit_ids_name_their_place_in_the_pool_and_read_back() -> None:
    unit = UnitId(1, 2, 42)

    assert str(unit) == "s1-g2-u42"
    assert UnitId.parse("s1-g2-u42") == unit
    assert UnitId.try_parse("nvidia0") is None
    with pytest.raises(ValueError, match="expected s<server>-g<gpu>-u<unit>"):
        UnitId.parse("s1-g2")


def test_the_pool_becomes_units_per_gpu_devices_per_gpu() -> None:
    advertisement = advertise(LISTING, HEALTHY, units_per_gpu=3)

    assert advertisement.capacity == 9
    assert advertisement.device_ids()[:4] == ["s0-g0-u0", "s0-g0-u1", "s0-g0-u2", "s0-g1-u0"]
    assert advertisement.health == "Healthy"
    assert advertisement.holds("s1-g0-u2")
    assert not advertisement.holds("s1-g0-u3")
    assert not advertisement.holds("s1-g1-u0")


def test_free_memory_changes_do_not_change_the_advertisement() -> None:
    busier = parse_list_gpus(LISTING.raw.replace("free memory 16160", "free memory 5"))

    assert advertise(busier, HEALTHY, units_per_gpu=100) == advertise(
        LISTING, HEALTHY, units_per_gpu=100
    )


def test_failed_health_makes_every_device_unhealthy_and_says_which_check() -> None:
    advertisement = advertise(LISTING, FAILED, units_per_gpu=100)

    assert advertisement.health == "Unhealthy"
    assert advertisement.reason == "bitfusion health failed: server 10.0.0.1:56001 reachable"
    assert advertisement != advertise(LISTING, HEALTHY, units_per_gpu=100)


def test_the_reason_alone_is_no_change() -> None:
    one = Advertisement(((0, 0),), 100, False, "timeout")
    other = Advertisement(((0, 0),), 100, False, "connection refused")

    assert one == other


def test_an_unlistable_pool_keeps_the_known_devices_as_unhealthy() -> None:
    known = advertise(LISTING, HEALTHY, units_per_gpu=100)

    kept = advertise_unreachable(known, "dial tcp 10.0.0.1:56001: i/o timeout", units_per_gpu=100)

    assert kept.device_ids() == known.device_ids()
    assert kept.health == "Unhealthy"
    assert advertise_unreachable(None, "no client", units_per_gpu=100).capacity == 0
