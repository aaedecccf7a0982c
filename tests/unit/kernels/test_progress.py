"""Kernel start-up progress: late subscribers replay, live ones follow, a final event ends it."""

from __future__ import annotations

import asyncio

from bf_jupyter.kernels.progress import ProgressBus


async def test_late_subscriber_replays_history_then_stops_at_final() -> None:
    bus = ProgressBus()
    bus.publish("k1", "created", "Pod created")
    bus.publish("k1", "ready", "Kernel ready")
    stages = [event.stage async for event in bus.follow("k1")]
    assert stages == ["created", "ready"]


async def test_live_subscriber_gets_each_event_once_until_final() -> None:
    bus = ProgressBus()
    bus.publish("k1", "requested", "Launch accepted")
    received: list[str] = []

    async def follow() -> None:
        async for event in bus.follow("k1"):
            received.append(event.stage)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0)
    bus.publish("k1", "locked", "Locked 1 GPUs")
    bus.publish("k2", "failed", "another kernel")
    bus.publish("k1", "failed", "ImagePullBackOff: image x:missing not found")
    await asyncio.wait_for(task, 5)
    assert received == ["requested", "locked", "failed"]
    assert bus.history("k1")[-1].to_json()["final"] is True
