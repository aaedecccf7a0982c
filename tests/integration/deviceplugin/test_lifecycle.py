"""Restarts and stops: re-registration after a kubelet restart, retries, clean and idempotent stop."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import pytest

from bf_jupyter.cluster.deviceplugin.plugin import (
    BitfusionDevicePlugin,
    PluginSettings,
    PluginStartError,
)
from bf_jupyter.cluster.deviceplugin.supervisor import Backoff, Control, supervise
from tests.integration.deviceplugin.conftest import FAST, RESOURCE, Supervised

if TYPE_CHECKING:
    from tests.support.fake_bitfusion import FakeBitfusionClient
    from tests.support.fake_kubelet import FakeKubelet


async def test_plugin_registers_again_when_the_kubelet_socket_is_recreated(
    supervised: Supervised, kubelet: FakeKubelet
) -> None:
    # Given a registered plugin
    first = set((await kubelet.wait_registered(RESOURCE)).devices)

    # When the kubelet restarts (kubelet.sock removed and created anew)
    await kubelet.restart()

    # Then the plugin registers again and the same device IDs come back
    view = await kubelet.wait_registered(RESOURCE, count=2)
    assert set(view.devices) == first
    assert view.allocatable == 200


async def test_plugin_registers_again_after_a_kubelet_restart_that_wipes_the_plugin_sockets(
    supervised: Supervised, kubelet: FakeKubelet
) -> None:
    await kubelet.wait_registered(RESOURCE)

    await kubelet.restart(remove_plugin_sockets=True)

    view = await kubelet.wait_registered(RESOURCE, count=2)
    assert (kubelet.plugin_dir / view.registration.endpoint).exists()
    assert view.allocatable == 200


async def test_reregistration_does_not_wait_for_a_slow_pool(
    supervised: Supervised, kubelet: FakeKubelet, pool: FakeBitfusionClient
) -> None:
    # Given a registered plugin whose pool now takes forever to list
    first = set((await kubelet.wait_registered(RESOURCE)).devices)
    pool.block_listing()
    try:
        # When the kubelet restarts, then the plugin registers again with the last known list
        await kubelet.restart()
        view = await kubelet.wait_registered(RESOURCE, count=2)
        assert set(view.devices) == first
    finally:
        pool.block_listing(False)


async def test_a_restart_request_registers_again(
    supervised: Supervised, kubelet: FakeKubelet
) -> None:
    await kubelet.wait_registered(RESOURCE)

    supervised.control.request_restart()  # what SIGHUP does

    await kubelet.wait_registered(RESOURCE, count=2)


async def test_start_is_retried_until_the_kubelet_comes_up(
    pool: FakeBitfusionClient,
    kubelet: FakeKubelet,
    settings: PluginSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given no kubelet yet
    await kubelet.stop()
    plugin = BitfusionDevicePlugin(settings)
    control = Control()
    task = asyncio.create_task(
        supervise(plugin, control, check_interval=FAST, backoff=Backoff(initial=FAST, maximum=FAST))
    )
    try:
        # When the plugin has tried and failed to register a few times, then the kubelet starts
        def failed_starts() -> int:
            return sum("start failed" in record.getMessage() for record in caplog.records)

        await kubelet.wait_until(lambda _: failed_starts() >= 3)
        assert not plugin.running
        await kubelet.start()

        # Then it registers
        await kubelet.wait_registered(RESOURCE)
    finally:
        control.request_stop()
        await asyncio.wait_for(task, 10)
    assert not settings.socket_path.exists()


async def test_stop_closes_the_stream_removes_the_socket_and_leaves_no_thread(
    pool: FakeBitfusionClient, kubelet: FakeKubelet, settings: PluginSettings
) -> None:
    # Given a plugin registered with a kubelet
    threads_before = set(threading.enumerate())
    plugin = BitfusionDevicePlugin(settings)
    await plugin.start()
    view = await kubelet.wait_registered(RESOURCE)
    await kubelet.wait_until(lambda _: pool.calls("health") >= 3)  # probes run in threads

    # When it stops (twice: stop is idempotent)
    await plugin.stop()
    await plugin.stop()

    # Then the kubelet's stream ended normally, the socket is gone and no thread was left
    await kubelet.wait_until(lambda _: not view.connected)
    assert view.ended_with == "OK"
    assert view.allocatable == 0
    assert not plugin.running
    assert not settings.socket_path.exists()
    assert set(threading.enumerate()) <= threads_before
    assert not [t for t in asyncio.all_tasks() if "device-plugin" in t.get_name()]


async def test_the_same_plugin_object_starts_again_after_a_stop(
    pool: FakeBitfusionClient, kubelet: FakeKubelet, settings: PluginSettings
) -> None:
    plugin = BitfusionDevicePlugin(settings)
    await plugin.start()
    await kubelet.wait_registered(RESOURCE)
    await plugin.stop()

    await plugin.start()
    try:
        view = await kubelet.wait_registered(RESOURCE, count=2)
        assert view.capacity == 200
    finally:
        await plugin.stop()


async def test_a_start_that_cannot_register_leaves_nothing_behind(
    pool: FakeBitfusionClient, kubelet: FakeKubelet, settings: PluginSettings
) -> None:
    # Given no kubelet
    await kubelet.stop()
    plugin = BitfusionDevicePlugin(settings)

    # When the plugin starts, then it says why it failed and cleans up its socket
    with pytest.raises(PluginStartError) as failed:
        await plugin.start()
    assert f"could not register {RESOURCE} with the kubelet at {settings.kubelet_socket}" in str(
        failed.value
    )
    assert not plugin.running
    assert not settings.socket_path.exists()
