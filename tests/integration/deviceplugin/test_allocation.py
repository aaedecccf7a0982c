"""GetPreferredAllocation and Allocate as the kubelet calls them, over real gRPC."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from tests.integration.deviceplugin.conftest import RESOURCE, Supervised
from tests.support.fake_kubelet import FakeKubelet, InsufficientDevices

if TYPE_CHECKING:
    from tests.support.fake_bitfusion import FakeBitfusionClient


def units(server: int, gpu: int, first: int, last: int) -> list[str]:
    return [f"s{server}-g{gpu}-u{u}" for u in range(first, last)]


async def test_preferred_allocation_fills_a_half_used_gpu_before_breaking_a_whole_one(
    supervised: Supervised, kubelet: FakeKubelet
) -> None:
    # Given GPU 0 has its second half free and GPU 1 is whole
    await kubelet.wait_registered(RESOURCE)
    available = units(0, 0, 50, 100) + units(0, 1, 0, 100)

    # When the kubelet asks where 50 units should go
    chosen = await kubelet.get_preferred_allocation(RESOURCE, available=available, size=50)

    # Then the plugin picks the half-used GPU, leaving GPU 1 whole
    assert chosen == units(0, 0, 50, 100)


async def test_preferred_allocation_keeps_a_multi_gpu_request_on_one_server(
    supervised: Supervised, kubelet: FakeKubelet, pool: FakeBitfusionClient
) -> None:
    # Given two servers: server 0 with one GPU, server 1 with two whole GPUs
    pool.set_pool([1, 2])
    await kubelet.wait_until(lambda k: k.capacity(RESOURCE) == 300)
    available = units(0, 0, 0, 100) + units(1, 0, 0, 100) + units(1, 1, 0, 100)

    # When 150 units are wanted
    chosen = await kubelet.get_preferred_allocation(RESOURCE, available=available, size=150)

    # Then they come from server 1 only (one bitfusion run draws from one server), on two GPUs
    assert len(chosen) == 150
    assert {device.split("-")[0] for device in chosen} == {"s1"}
    assert {device.rsplit("-", 1)[0] for device in chosen} == {"s1-g0", "s1-g1"}


async def test_preferred_allocation_keeps_what_the_kubelet_must_include(
    supervised: Supervised, kubelet: FakeKubelet
) -> None:
    await kubelet.wait_registered(RESOURCE)
    available = units(0, 0, 0, 100) + units(0, 1, 0, 100)

    chosen = await kubelet.get_preferred_allocation(
        RESOURCE, available=available, must_include=["s0-g1-u7"], size=10
    )

    # The must-include unit stays, and its GPU supplies the rest
    assert chosen[0] == "s0-g1-u7"
    assert len(chosen) == 10
    assert all(device.startswith("s0-g1-") for device in chosen)


async def test_allocate_tells_the_container_its_units_and_their_gpus(
    supervised: Supervised, kubelet: FakeKubelet
) -> None:
    # Given a registered plugin, when a container is admitted with 150 units
    await kubelet.wait_registered(RESOURCE)
    admission = await kubelet.admit(RESOURCE, 150, container="team-a/notebook/main")

    # Then it learns how many units it got and how they are spread, and nothing else
    assert admission.envs == {
        "BF_JUPYTER_GPU_UNITS": "150",
        "BF_JUPYTER_GPU_SHARES": "s0-g0:100,s0-g1:50",
    }
    assert list(admission.response.mounts) == []
    assert list(admission.response.devices) == []
    assert kubelet.allocatable(RESOURCE) == 200  # allocatable is capacity; the kubelet tracks use
    assert len(kubelet.allocated[RESOURCE]) == 150


async def test_allocate_refuses_devices_it_does_not_advertise(
    supervised: Supervised, kubelet: FakeKubelet
) -> None:
    await kubelet.wait_registered(RESOURCE)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await kubelet.allocate(RESOURCE, ["s0-g0-u1", "s9-g0-u0", "nvidia0"])

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "s9-g0-u0, nvidia0" in str(refused.value.details())
    assert "200 devices (2 GPUs × 100 units)" in str(refused.value.details())


async def test_a_container_cannot_be_given_more_units_than_are_free(
    supervised: Supervised, kubelet: FakeKubelet
) -> None:
    await kubelet.wait_registered(RESOURCE)
    await kubelet.admit(RESOURCE, 150, container="a")

    with pytest.raises(InsufficientDevices, match=r"b needs 100 bitfusion\.io/gpu, 50 of 200"):
        await kubelet.admit(RESOURCE, 100, container="b")

    kubelet.release("a")
    assert len((await kubelet.admit(RESOURCE, 100, container="b")).device_ids) == 100
