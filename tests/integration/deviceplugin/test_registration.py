"""Registration, ListAndWatch and health, over real unix-socket gRPC with a fake kubelet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.integration.deviceplugin.conftest import RESOURCE, Supervised

if TYPE_CHECKING:
    from tests.support.fake_bitfusion import FakeBitfusionClient
    from tests.support.fake_kubelet import FakeKubelet


async def test_plugin_registers_its_resource_version_and_endpoint(
    supervised: Supervised, kubelet: FakeKubelet
) -> None:
    # Given a running plugin, when the kubelet hears from it
    await kubelet.wait_registered(RESOURCE)

    # Then it registered bitfusion.io/gpu on v1beta1 with its own socket beside kubelet.sock
    (registration,) = kubelet.registrations
    assert registration.resource_name == RESOURCE
    assert registration.version == "v1beta1"
    assert registration.endpoint == "bf-jupyter-bitfusion.io-gpu.sock"
    assert (kubelet.plugin_dir / registration.endpoint).exists()
    assert registration.preferred_allocation is True
    assert registration.pre_start_required is False


async def test_list_and_watch_advertises_units_per_gpu_times_the_pools_gpus(
    supervised: Supervised, kubelet: FakeKubelet
) -> None:
    # Given a pool of one server with two GPUs and 100 units per GPU
    view = await kubelet.wait_registered(RESOURCE)

    # Then the kubelet sees 200 healthy devices named after their place in the pool
    assert view.capacity == 200
    assert view.allocatable == 200
    assert set(view.devices) == {f"s0-g{g}-u{u}" for g in range(2) for u in range(100)}
    assert kubelet.node_resources() == {
        "capacity": {RESOURCE: "200"},
        "allocatable": {RESOURCE: "200"},
    }


async def test_list_and_watch_sends_the_new_list_when_the_pool_grows(
    supervised: Supervised, kubelet: FakeKubelet, pool: FakeBitfusionClient
) -> None:
    # Given the kubelet has the first list
    view = await kubelet.wait_registered(RESOURCE)
    assert view.updates == 1

    # When a second server with three GPUs joins the pool
    pool.set_pool([2, 3])

    # Then the kubelet gets one more full list, 500 devices, the old IDs unchanged
    await kubelet.wait_until(lambda k: k.capacity(RESOURCE) == 500)
    assert view.updates == 2
    assert {"s0-g1-u99", "s1-g2-u0"} <= set(view.devices)


async def test_list_and_watch_stays_quiet_while_nothing_changes(
    supervised: Supervised, kubelet: FakeKubelet, pool: FakeBitfusionClient
) -> None:
    # Given the kubelet has the first list
    view = await kubelet.wait_registered(RESOURCE)
    listed = pool.calls("list_gpus")

    # When the plugin has probed an unchanged pool several more times
    await kubelet.wait_until(lambda _: pool.calls("health") >= listed + 4)

    # Then it sent nothing more: no periodic resend
    assert view.updates == 1


async def test_failed_health_marks_devices_unhealthy_and_recovery_heals_them(
    supervised: Supervised, kubelet: FakeKubelet, pool: FakeBitfusionClient
) -> None:
    # Given a healthy pool
    view = await kubelet.wait_registered(RESOURCE)

    # When `bitfusion health` starts failing
    pool.set_health(False)

    # Then every device turns Unhealthy, nothing allocatable, capacity kept
    await kubelet.wait_until(lambda k: k.allocatable(RESOURCE) == 0)
    assert view.capacity == 200
    assert set(view.devices.values()) == {"Unhealthy"}
    assert supervised.plugin.advertisement is not None
    assert "server 10.0.0.1:56001 reachable" in supervised.plugin.advertisement.reason

    # When health passes again, then the same devices are Healthy again
    pool.set_health(True)
    await kubelet.wait_until(lambda k: k.allocatable(RESOURCE) == 200)
    assert view.updates == 3


async def test_a_pool_that_cannot_be_listed_keeps_its_device_ids_as_unhealthy(
    supervised: Supervised, kubelet: FakeKubelet, pool: FakeBitfusionClient
) -> None:
    # Given the kubelet knows the pool's devices
    view = await kubelet.wait_registered(RESOURCE)
    known = set(view.devices)

    # When list_gpus fails, then the same IDs stay, all Unhealthy
    pool.fail_listing("none of the servers responded correctly")
    await kubelet.wait_until(lambda k: k.allocatable(RESOURCE) == 0)
    assert set(view.devices) == known
    assert supervised.plugin.advertisement is not None
    assert "none of the servers responded correctly" in supervised.plugin.advertisement.reason

    # When it answers again, then they recover
    pool.fail_listing(None)
    await kubelet.wait_until(lambda k: k.allocatable(RESOURCE) == 200)
