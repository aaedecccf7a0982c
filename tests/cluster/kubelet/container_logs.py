"""Container logs as the kubelet keeps them: one record per container run (restarts keep the
previous run for ``previous=true``), read whole, tailed, timestamped or followed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass
class ContainerLog:
    """The output of one run of one container (stdout and stderr interleaved, as the kubelet's)."""

    lines: list[tuple[str, bytes]] = field(default_factory=list)  # (RFC3339Nano time, line)
    partial: bytes = b""
    closed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, data: bytes) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        self.lines.extend((stamp, line + b"\n") for line in complete)
        self._notify()

    def close(self) -> None:
        if self.partial:
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            self.lines.append((stamp, self.partial))
            self.partial = b""
        self.closed = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def read(
        self, *, follow: bool, tail: int | None, timestamps: bool, limit_bytes: int | None
    ) -> AsyncIterator[bytes]:
        """The log, then (``follow``) each new line until the run ends."""
        start = max(len(self.lines) - tail, 0) if tail is not None else 0
        sent = 0
        index = start
        while True:
            while index < len(self.lines):
                stamp, line = self.lines[index]
                index += 1
                chunk = (stamp.encode() + b" " + line) if timestamps else line
                if limit_bytes is not None:
                    chunk = chunk[: max(limit_bytes - sent, 0)]
                    if not chunk:
                        return
                sent += len(chunk)
                yield chunk
            if not follow or self.closed:
                return
            await self._changed.wait()
