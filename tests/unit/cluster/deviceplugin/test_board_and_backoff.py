"""The device board wakes watchers only on change; failed starts back off and reset."""

from __future__ import annotations

import asyncio

from bf_jupyter.cluster.deviceplugin.inventory import Advertisement
from bf_jupyter.cluster.deviceplugin.service import DeviceBoard
from bf_jupyter.cluster.deviceplugin.supervisor import Backoff

TWO_GPUS = Advertisement(((0, 0), (0, 1)), 100, True)


async def test_a_watcher_sees_the_list_then_only_changes_then_ends_on_close() -> None:
    board = DeviceBoard(TWO_GPUS)
    seen: list[Advertisement] = []

    async def watch() -> None:
        async for advertisement in board.watch():
            seen.append(advertisement)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)  # the watcher takes the first list

    assert board.publish(Advertisement(((0, 0), (0, 1)), 100, True, "same list")) is False
    assert board.publish(Advertisement(((0, 0), (0, 1)), 100, False, "health failed")) is True
    await asyncio.sleep(0)
    board.close()
    await asyncio.wait_for(watcher, 5)

    assert [a.healthy for a in seen] == [True, False]
    assert board.publish(TWO_GPUS) is False  # closed boards ignore publishes


def test_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(initial=1, maximum=5)

    assert [backoff.next_delay() for _ in range(5)] == [1, 2, 4, 5, 5]
    backoff.reset()
    assert backoff.next_delay() == 1
