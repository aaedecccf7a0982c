"""Kernel start-up progress: provisioners publish, the server extension relays to the browser.

A provisioner is created by jupyter_client's KernelManager, so the server never holds it before the
kernel starts; both sides meet here, keyed by kernel id. Each kernel's events are kept (bounded) so a
subscriber that connects late replays what it missed, then follows live until a final event.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["PROGRESS", "ProgressBus", "ProgressEvent", "Stage"]

Stage = Literal[
    "requested",  # the server accepted the launch
    "created",  # pod (or local process) created
    "scheduled",  # pod bound to a node
    "pulling",  # image pull in progress
    "started",  # container / process running
    "locked",  # the Bitfusion client locked the GPUs ("Locked N GPUs ...")
    "ready",  # kernel answered kernel_info: final
    "failed",  # start-up failed: final, message says why in one sentence
    "info",  # anything else worth showing
]
_FINAL = frozenset({"ready", "failed"})
_HISTORY = 200  # events kept per kernel
_RETAIN_SECONDS = 600.0  # how long a finished kernel's events stay for late subscribers


@dataclass(frozen=True)
class ProgressEvent:
    kernel_id: str
    stage: Stage
    message: str
    time: float = field(default_factory=time.time)

    @property
    def final(self) -> bool:
        return self.stage in _FINAL

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "final": self.final}


class ProgressBus:
    """Per-kernel event history plus live subscribers. Use from one event loop."""

    def __init__(self) -> None:
        self._history: dict[str, deque[ProgressEvent]] = {}
        self._finished_at: dict[str, float] = {}
        self._subscribers: dict[str, set[asyncio.Queue[ProgressEvent]]] = {}

    def publish(self, kernel_id: str, stage: Stage, message: str) -> ProgressEvent:
        """Record an event and hand it to live subscribers."""
        self._forget_old()
        event = ProgressEvent(kernel_id, stage, message)
        self._history.setdefault(kernel_id, deque(maxlen=_HISTORY)).append(event)
        if event.final:
            self._finished_at[kernel_id] = event.time
        for queue in self._subscribers.get(kernel_id, ()):
            queue.put_nowait(event)
        return event

    def begin(self, kernel_id: str) -> None:
        """A new start of the kernel (a restart): drop the events of the previous start, up to and
        including its final one, so that followers of this start do not stop at the old final."""
        events = self._history.get(kernel_id)
        if not events:
            return
        finals = [i for i, event in enumerate(events) if event.final]
        if finals:
            kept = list(events)[finals[-1] + 1 :]
            self._history[kernel_id] = deque(kept, maxlen=_HISTORY)
            self._finished_at.pop(kernel_id, None)

    def history(self, kernel_id: str) -> list[ProgressEvent]:
        return list(self._history.get(kernel_id, ()))

    def known(self, kernel_id: str) -> bool:
        return kernel_id in self._history

    async def follow(self, kernel_id: str) -> AsyncIterator[ProgressEvent]:
        """Replay the kernel's events, then yield live ones; stops after a final event."""
        queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        self._subscribers.setdefault(kernel_id, set()).add(queue)
        try:
            for event in self.history(kernel_id):
                yield event
                if event.final:
                    return
            while True:
                event = await queue.get()
                yield event
                if event.final:
                    return
        finally:
            self._subscribers[kernel_id].discard(queue)
            if not self._subscribers[kernel_id]:
                del self._subscribers[kernel_id]

    def _forget_old(self) -> None:
        cutoff = time.time() - _RETAIN_SECONDS
        for kernel_id in [k for k, t in self._finished_at.items() if t < cutoff]:
            self._history.pop(kernel_id, None)
            self._finished_at.pop(kernel_id, None)


# The process-wide bus: provisioners and the server extension run in the same jupyter-server process.
PROGRESS = ProgressBus()
