"""Talking to a jupyter-server that runs in the test process (pytest-jupyter), for the server
tests on either backend.

pytest-asyncio would run ``async def`` tests on a loop of its own while the server runs on
pytest-jupyter's, so server tests are plain functions that ``run(...)`` coroutines on the
server's loop. A conftest assigns the fixtures below to module names to put them in scope
(after pytest-jupyter's star import, whose ``jp_server_config`` this one replaces).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

Api = Callable[..., Any]
"""``api(method, path, body=None, **fetch_kwargs)`` → the server's response, errors included."""


@pytest.fixture
def jp_server_config(extension_config: dict[str, Any]) -> dict[str, Any]:
    """The server with the bf-jupyter extension enabled, configured by the directory's
    ``extension_config`` fixture."""
    return {
        "ServerApp": {"jpserver_extensions": {"bf_jupyter.server": True}},
        "BitfusionExtension": extension_config,
    }


@pytest.fixture
def run(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[T]], T]:
    """Run a coroutine on the server's event loop and return its result. The loop is made the
    thread's current one: tornado's HTTP client looks it up, and an async test before this one may
    have left the thread without a current loop."""
    asyncio.set_event_loop(jp_asyncio_loop)
    return jp_asyncio_loop.run_until_complete


@pytest.fixture
def api(jp_fetch: Any, run: Callable[[Awaitable[Any]], Any]) -> Api:
    """``api("GET", "pool")``: an authenticated call under /bitfusion/api/; errors are returned."""

    def call(method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        path, _, query = path.partition("?")
        if query:
            kwargs["params"] = dict(urllib.parse.parse_qsl(query))
        return run(
            jp_fetch(
                "bitfusion",
                "api",
                *path.split("/"),
                method=method,
                body=None if body is None else json.dumps(body),
                raise_error=False,
                allow_nonstandard_methods=True,
                **kwargs,
            )
        )

    return call


async def kernel_output(serverapp: Any, kernel_id: str, code: str) -> str:
    """What ``code`` prints when the server's kernel runs it."""
    client = serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        outputs: list[str] = []
        await client.execute_interactive(
            code,
            timeout=60,
            output_hook=lambda msg: outputs.append(msg["content"].get("text", "")),
        )
        return "".join(outputs)
    finally:
        with contextlib.suppress(Exception):
            client.stop_channels()
