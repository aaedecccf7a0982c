"""Running code in a kernel from a test: execute, collect output, stop at the idle status."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.manager import AsyncKernelManager


@dataclass
class Execution:
    stdout: str = ""
    error: str | None = None
    reply: dict[str, Any] = field(default_factory=dict)


async def execute(client: AsyncKernelClient, code: str, *, timeout: float = 60) -> Execution:
    """Run ``code``; return its stdout, the error name (if any) and the execute_reply content."""
    msg_id = client.execute(code)
    result = Execution()

    async def collect() -> None:
        while True:
            message = await client.get_iopub_msg()
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "stream" and message["content"]["name"] == "stdout":
                result.stdout += message["content"]["text"]
            elif kind == "error":
                result.error = message["content"]["ename"]
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                return

    await asyncio.wait_for(collect(), timeout)
    while True:
        reply = await asyncio.wait_for(client.get_shell_msg(), timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            result.reply = reply["content"]
            return result


async def wait_for_output(
    client: AsyncKernelClient, msg_id: str, text: str, *, timeout: float = 30
) -> None:
    """Return once the execution ``msg_id`` printed ``text`` (so it is past any set-up)."""

    async def watch() -> None:
        seen = ""
        while True:
            message = await client.get_iopub_msg()
            if message["parent_header"].get("msg_id") == msg_id and message["msg_type"] == "stream":
                seen += message["content"]["text"]
                if text in seen:
                    return

    await asyncio.wait_for(watch(), timeout)


async def collect_reply(
    client: AsyncKernelClient, msg_id: str, *, timeout: float = 30
) -> Execution:
    """The rest of an execution started with ``client.execute``: error name and reply."""
    result = Execution()

    async def iopub() -> None:
        while True:
            message = await client.get_iopub_msg()
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "error":
                result.error = message["content"]["ename"]
            elif (
                message["msg_type"] == "status" and message["content"]["execution_state"] == "idle"
            ):
                return

    await asyncio.wait_for(iopub(), timeout)
    while True:
        reply = await asyncio.wait_for(client.get_shell_msg(), timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            result.reply = reply["content"]
            return result


async def run_in_kernel(manager: AsyncKernelManager, code: str) -> str:
    """Wait for ``manager``'s kernel to answer ``kernel_info``, run ``code`` and return its stdout."""
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.kernel_info(reply=True, timeout=30)
        assert reply["content"]["status"] == "ok"
        return (await execute(client, code)).stdout
    finally:
        client.stop_channels()
