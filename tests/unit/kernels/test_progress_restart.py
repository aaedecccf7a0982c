"""A restarted kernel's progress starts anew: followers do not stop at the previous start's end."""

from __future__ import annotations

from bf_jupyter.kernels.progress import ProgressBus


async def test_begin_drops_the_finished_start_and_keeps_what_came_after() -> None:
    bus = ProgressBus()
    bus.publish("k1", "created", "first pod")
    bus.publish("k1", "ready", "first ready")
    bus.publish("k1", "requested", "restart requested")
    bus.begin("k1")
    bus.publish("k1", "created", "second pod")
    bus.publish("k1", "ready", "second ready")
    messages = [event.message async for event in bus.follow("k1")]
    assert messages == ["restart requested", "second pod", "second ready"]


def test_begin_keeps_a_start_in_progress() -> None:
    bus = ProgressBus()
    bus.publish("k1", "requested", "launch accepted")
    bus.begin("k1")
    assert [event.stage for event in bus.history("k1")] == ["requested"]
