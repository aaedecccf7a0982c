"""Long-lived API streams (watches, followed logs) that can be ended at once from another thread.

``kubeapi`` opens them; this module only reads them, keeping at most a bounded line in memory. A watch must not poll and must not hold one of
asyncio's few default executor threads for minutes, so ``AsyncLineStream`` reads in a daemon thread
of its own and hands lines to the loop; closing it shuts the socket down, which wakes the blocked
read immediately instead of waiting for the server's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["DEFAULT_MAX_LINE", "AsyncLineStream", "LineSplitter", "LineStream"]


# A watch event holds one object (etcd refuses objects over 1.5 MiB; JSON and the event wrapper add
# to it): lines up to this size are kept whole. Logs pass a smaller bound.
DEFAULT_MAX_LINE = 8 * 1024 * 1024
_TERMINATOR = re.compile(rb"\r\n|\r|\n")


class LineSplitter:
    """Bytes in, lines out, holding at most ``max_line`` bytes of an unfinished line.

    ``\n``, ``\r\n`` and a lone ``\r`` each end a line, so a progress bar that redraws itself
    with ``\r`` yields one line per redraw instead of growing one line forever. A line longer
    than ``max_line`` is cut there, marked, and the rest of it is skipped."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError(f"max_line {max_line} must be at least 1 byte")
        self.max_line = max_line
        self._pending = bytearray()
        self._skipping = False  # inside the rest of a line that was cut
        self._held_cr = False  # the last chunk ended in \r

    def feed(self, chunk: bytes) -> list[str]:
        """The lines that ``chunk`` completes (a ``\r`` at its very end waits for a ``\n``)."""
        lines: list[str] = []
        if self._held_cr:
            self._held_cr = False
            self._end_line(lines)
            if chunk.startswith(b"\n"):  # a \r\n split between two chunks
                chunk = chunk[1:]
        start = 0
        for match in _TERMINATOR.finditer(chunk):
            self._take(chunk[start : match.start()], lines)
            if match.group() == b"\r" and match.end() == len(chunk):
                self._held_cr = True  # maybe the first half of \r\n: decided with the next chunk
                return lines
            self._end_line(lines)
            start = match.end()
        self._take(chunk[start:], lines)
        return lines

    def flush(self) -> list[str]:
        """What is left once the stream ended (a last line without a terminator)."""
        lines: list[str] = []
        if self._held_cr or (self._pending and not self._skipping):
            self._end_line(lines)
        self._held_cr = False
        self._pending.clear()
        self._skipping = False
        return lines

    def _take(self, part: bytes, lines: list[str]) -> None:
        if self._skipping:
            return
        room = self.max_line - len(self._pending)
        if len(part) > room:
            self._pending += part[:room]
            lines.append(
                self._pending.decode("utf-8", "replace") + f" … [line cut at {self.max_line} bytes]"
            )
            self._pending.clear()
            self._skipping = True
            return
        self._pending += part

    def _end_line(self, lines: list[str]) -> None:
        if not self._skipping:
            lines.append(self._pending.decode("utf-8", "replace"))
        self._pending.clear()
        self._skipping = False


class LineStream:
    """A streaming HTTP response read line by line (each at most ``max_line`` bytes, see
    ``LineSplitter``). ``close()`` may be called from any thread and interrupts a read that is
    blocked waiting for the server."""

    def __init__(
        self,
        response: Any,
        translate: Callable[[Exception], Exception],
        *,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self._response = response
        self._translate = translate
        self._closed = False
        self._max_line = max_line

    def __iter__(self) -> Iterator[str]:
        splitter = LineSplitter(self._max_line)
        try:
            for chunk in self._response.stream(amt=None, decode_content=False):
                data = chunk if isinstance(chunk, bytes) else str(chunk).encode()
                yield from splitter.feed(data)
            yield from splitter.flush()
        except Exception as error:
            if self._closed:
                return
            raise self._translate(error) from None
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # shutdown() wakes a reader blocked in recv(); close() alone would not. The connection
        # is closed, never returned to the pool: it is mid-stream and no request may reuse it.
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        with contextlib.suppress(Exception):
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)  # also tells the server we are gone
            else:
                self._response.shutdown()
        with contextlib.suppress(Exception):
            self._response.close()


_END = object()


class AsyncLineStream:
    """The lines of a ``LineStream`` for asyncio code, read in a daemon thread (a long stream must not
    hold one of the loop's few default executor threads). Use as ``async with`` + ``async for``;
    leaving the block closes the stream at once. The opener runs in the thread too."""

    def __init__(self, opener: Callable[[], LineStream]) -> None:
        self._opener = opener
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._stream: LineStream | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    async def __aenter__(self) -> AsyncLineStream:
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._pump, args=(loop,), daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncLineStream:
        return self

    async def __anext__(self) -> str:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # later calls end too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return str(item)

    def close(self) -> None:
        self._closed.set()
        if self._stream is not None:
            self._stream.close()

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        def offer(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens any more
                loop.call_soon_threadsafe(self._queue.put_nowait, item)

        try:
            self._stream = self._opener()
            if self._closed.is_set():
                self._stream.close()
            for line in self._stream:
                if self._closed.is_set():
                    break
                offer(line)
        except Exception as error:
            if not self._closed.is_set():
                offer(error)
        offer(_END)
