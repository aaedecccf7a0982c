"""A short-lived cache with in-flight coalescing, so many open tabs cost one backend call.

Every sidebar polls the pool and the quota. Without this, N tabs mean N ``list_gpus`` runs or N
calls to the API server per interval; with it, concurrent callers share one call and later callers
within ``ttl`` seconds share its result. Failures are kept for the same time: a backend that is
down is not hammered harder because it is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

__all__ = ["CoalescingCache"]

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    at: float
    value: T | None = None
    error: BaseException | None = None


class CoalescingCache(Generic[T]):
    """Results of ``load`` per key, fresh for ``ttl`` seconds; concurrent misses share one load."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, _Entry[T]] = {}
        self._inflight: dict[str, asyncio.Future[T]] = {}
        self.loads = 0  # how many times ``load`` actually ran (benchmarks and tests read it)

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value, or the result of one shared ``load()``; re-raises a cached failure."""
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry.at < self.ttl:
            return _unwrap(entry)
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, load))
            self._inflight[key] = pending
        # shield: one caller going away (a closed tab) must not cancel the others' shared load
        return await asyncio.shield(pending)

    def invalidate(self, key: str | None = None) -> None:
        """Forget one key (or all), e.g. after a launch changed what the quota says."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    async def _load(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        self.loads += 1
        try:
            value = await load()
        except Exception as error:
            self._entries[key] = _Entry(self._clock(), error=error)
            raise
        else:
            self._entries[key] = _Entry(self._clock(), value=value)
            return value
        finally:
            del self._inflight[key]


def _unwrap(entry: _Entry[T]) -> T:
    if entry.error is not None:
        raise entry.error
    return cast("T", entry.value)
