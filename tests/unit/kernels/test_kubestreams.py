"""API streams: lines reassembled across chunks, and closing from another thread ends a blocked read."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator

from bf_jupyter.kubestreams import AsyncLineStream, LineStream


class ScriptedResponse:
    """A streaming response whose chunks a test feeds; a blocked read ends when it is shut down."""

    def __init__(self) -> None:
        self.chunks: queue.Queue[bytes | None] = queue.Queue()
        self.closed = threading.Event()

    def stream(self, amt: object = None, decode_content: object = None) -> Iterator[bytes]:
        while True:
            chunk = self.chunks.get()
            if chunk is None:
                if self.closed.is_set():
                    raise OSError("socket shut down")
                return
            yield chunk

    def shutdown(self) -> None:
        self.closed.set()
        self.chunks.put(None)

    def close(self) -> None:
        self.closed.set()


def _untranslated(error: Exception) -> Exception:
    return error


def test_lines_are_reassembled_across_chunks() -> None:
    response = ScriptedResponse()
    for chunk in (b'{"a":', b' 1}\n{"b"', b": 2}\n", b"tail", None):
        response.chunks.put(chunk)
    assert list(LineStream(response, _untranslated)) == ['{"a": 1}', '{"b": 2}', "tail"]


async def test_closing_ends_a_read_that_waits_for_the_server() -> None:
    response = ScriptedResponse()
    response.chunks.put(b"first\n")
    received: list[str] = []
    async with AsyncLineStream(lambda: LineStream(response, _untranslated)) as lines:
        async for line in lines:
            received.append(line)
            break  # the server sends nothing more: the reader thread is blocked now
    # leaving the block shut the response down; the reader ends without an error
    await asyncio.wait_for(asyncio.to_thread(response.closed.wait), 5)
    assert received == ["first"]


async def test_stream_errors_reach_the_reader() -> None:
    def refuse() -> LineStream:
        raise ConnectionError("API unreachable")

    async with AsyncLineStream(refuse) as lines:
        try:
            async for _ in lines:
                pass
        except ConnectionError as error:
            assert "unreachable" in str(error)
        else:
            raise AssertionError("the opener's error was swallowed")
