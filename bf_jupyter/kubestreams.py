"""Long-lived API streams (watches, followed logs) that can be ended at once from another thread.

``kubeapi`` opens them; this module only reads them. A watch must not poll and must not hold one of
asyncio's few default executor threads for minutes, so ``AsyncLineStream`` reads in a daemon thread
of its own and hands lines to the loop; closing it shuts the socket down, which wakes the blocked
read immediately instead of waiting for the server's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["AsyncLineStream", "LineStream"]


class LineStream:
    """A streaming HTTP response read line by line. ``close()`` may be called from any thread and
    interrupts a read that is blocked waiting for the server."""

    def __init__(self, response: Any, translate: Callable[[Exception], Exception]) -> None:
        self._response = response
        self._translate = translate
        self._closed = False

    def __iter__(self) -> Iterator[str]:
        pending = b""
        try:
            for chunk in self._response.stream(amt=None, decode_content=False):
                pending += chunk if isinstance(chunk, bytes) else str(chunk).encode()
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
            if pending:
                yield pending.decode("utf-8", "replace")
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
