"""CoalescingCache: concurrent callers share one load; results and failures live for the TTL."""

from __future__ import annotations

import asyncio

import pytest

from bf_jupyter.server.cache import CoalescingCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_callers_share_one_load() -> None:
    # Given a load that waits until released
    cache: CoalescingCache[int] = CoalescingCache(5.0, clock=Clock())
    release = asyncio.Event()

    async def load() -> int:
        await release.wait()
        return 42

    # When ten callers ask before it finishes
    callers = [asyncio.ensure_future(cache.get("pool", load)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    # Then they all get its result and it ran once
    assert await asyncio.gather(*callers) == [42] * 10
    assert cache.loads == 1


async def test_a_result_is_reused_until_the_ttl_passes() -> None:
    clock = Clock()
    cache: CoalescingCache[float] = CoalescingCache(5.0, clock=clock)

    async def load() -> float:
        return clock.now

    assert await cache.get("k", load) == 0.0
    clock.now = 4.9
    assert await cache.get("k", load) == 0.0
    clock.now = 5.0
    assert await cache.get("k", load) == 5.0
    assert cache.loads == 2


async def test_a_failure_is_kept_for_the_ttl_so_a_down_backend_is_not_hammered() -> None:
    clock = Clock()
    cache: CoalescingCache[int] = CoalescingCache(5.0, clock=clock)

    async def load() -> int:
        raise ConnectionError("down")

    for _ in range(3):
        with pytest.raises(ConnectionError):
            await cache.get("k", load)
    assert cache.loads == 1


async def test_a_caller_going_away_does_not_cancel_the_shared_load() -> None:
    cache: CoalescingCache[int] = CoalescingCache(5.0, clock=Clock())
    release = asyncio.Event()

    async def load() -> int:
        await release.wait()
        return 7

    leaving = asyncio.ensure_future(cache.get("k", load))
    staying = asyncio.ensure_future(cache.get("k", load))
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()
    assert await staying == 7


async def test_invalidate_forces_a_fresh_load() -> None:
    cache: CoalescingCache[int] = CoalescingCache(60.0, clock=Clock())
    calls = iter(range(10))

    async def load() -> int:
        return next(calls)

    assert await cache.get("k", load) == 0
    cache.invalidate()
    assert await cache.get("k", load) == 1
