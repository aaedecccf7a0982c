"""A fake kubelet on a real unix socket, a scriptable Bitfusion client behind the real adapter, and
the plugin under test running under its supervisor in the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bf_jupyter.cluster.deviceplugin.plugin import BitfusionDevicePlugin, PluginSettings
from bf_jupyter.cluster.deviceplugin.supervisor import Backoff, Control, supervise
from tests.support.fake_bitfusion import FakeBitfusionClient
from tests.support.fake_kubelet import FakeKubelet

RESOURCE = "bitfusion.io/gpu"
FAST = 0.05  # seconds between health probes and kubelet.sock checks: tests await events, not time


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBitfusionClient:
    """One server with two GPUs, reached through the real client adapter ($BF_BITFUSION_BIN)."""
    client = FakeBitfusionClient(tmp_path / "client", servers=[2])
    monkeypatch.setenv("BF_BITFUSION_BIN", str(client.path))
    return client


@pytest.fixture
async def kubelet() -> AsyncIterator[FakeKubelet]:
    async with FakeKubelet() as fake:
        yield fake


@pytest.fixture
def settings(kubelet: FakeKubelet) -> PluginSettings:
    return PluginSettings(plugin_dir=kubelet.plugin_dir, health_interval=FAST, probe_timeout=10)


@dataclass
class Supervised:
    """A plugin kept registered by ``supervise`` in a background task."""

    plugin: BitfusionDevicePlugin
    control: Control
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.control.request_stop()
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def supervised(
    pool: FakeBitfusionClient, settings: PluginSettings
) -> AsyncIterator[Supervised]:
    """The plugin, started and supervised; stopped (and checked stopped) after the test."""
    plugin = BitfusionDevicePlugin(settings)
    control = Control()
    task = asyncio.create_task(
        supervise(plugin, control, check_interval=FAST, backoff=Backoff(initial=FAST, maximum=FAST))
    )
    running = Supervised(plugin, control, task)
    yield running
    await running.stop()
    assert not plugin.running
    assert not settings.socket_path.exists()


@pytest.fixture
def no_leftover_plugin_sockets(kubelet: FakeKubelet) -> Iterator[None]:
    yield
    assert sorted(p.name for p in kubelet.plugin_dir.glob("bf-jupyter-*.sock")) == []
