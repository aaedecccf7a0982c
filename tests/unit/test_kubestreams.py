"""API streams: lines reassembled across chunks, and closing from another thread ends a blocked read."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator

import pytest

from bf_jupyter.kubestreams import AsyncLineStream, LineSplitter, LineStream


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


# ----- bounded lines ---------------------------------------------------------------------------------


def _split(chunks: list[bytes], max_line: int = 16) -> list[str]:
    splitter = LineSplitter(max_line)
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    return lines + splitter.flush()


def test_a_progress_bar_redrawn_with_carriage_returns_is_one_line_per_redraw() -> None:
    assert _split([b"10%\r20%\r", b"30%\r\n", b"done\n"]) == ["10%", "20%", "30%", "done"]


@pytest.mark.parametrize(
    "chunks",
    [[b"a\r\nb\n"], [b"a\r", b"\nb\n"], [b"a", b"\r", b"\n", b"b", b"\n"], [b"a\r\nb"]],
    ids=["one chunk", "split after CR", "byte by byte", "no final newline"],
)
def test_crlf_ends_one_line_wherever_the_chunks_split_it(chunks: list[bytes]) -> None:
    assert _split(chunks) == ["a", "b"]


def test_a_line_over_the_bound_is_cut_marked_and_its_rest_skipped() -> None:
    # given a process that prints a megabyte without a newline, in small chunks, then a line
    chunks = [b"x" * 1000] * 1000 + [b"\nnext\n"]
    splitter = LineSplitter(64)
    lines: list[str] = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
        assert len(splitter._pending) <= 64  # never more than the bound is held
    assert lines == ["x" * 64 + " … [line cut at 64 bytes]", "next"]


def test_an_endless_redraw_without_newline_holds_one_redraw_at_most() -> None:
    splitter = LineSplitter(32)
    count = 0
    for i in range(10_000):
        count += len(splitter.feed(f"step {i}\r".encode()))
        assert len(splitter._pending) <= 32
    count += len(splitter.flush())
    assert count == 10_000


def test_a_line_stream_yields_bounded_lines() -> None:
    response = ScriptedResponse()
    for chunk in (b"y" * 100, b"\rok\n", None):
        response.chunks.put(chunk)
    assert list(LineStream(response, _untranslated, max_line=10)) == [
        "y" * 10 + " … [line cut at 10 bytes]",
        "ok",
    ]
