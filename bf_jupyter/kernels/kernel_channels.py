"""Talking to a kernel over its own ZMQ channels: "are you ready?", "interrupt" and "GPU use?".

A provisioner uses these where a local one would use a process: readiness is the first
``kernel_info_reply`` on the shell channel (not "the container started"), and an interrupt is an
``interrupt_request`` on the control channel, because a pod cannot be signalled from outside
without ``pods/exec`` (which would let the server run anything in the pod).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

__all__ = ["await_kernel_info", "request_gpu_reading", "request_interrupt"]

# ZMQ retries a refused connection after this many ms; the kernel binds a moment after its
# container starts, so a short interval turns "listening" into "ready" without a poll loop here.
_RECONNECT_MS = 20


async def await_kernel_info(connection_info: Mapping[str, Any]) -> dict[str, Any]:
    """Wait until the kernel answers ``kernel_info_request``; return the reply's content.

    Never times out by itself: the caller bounds it (and cancels it when the kernel dies).
    """
    content: dict[str, Any] = await _request(connection_info, "shell", "kernel_info_request")
    return content


async def request_interrupt(connection_info: Mapping[str, Any], *, timeout: float = 5.0) -> bool:
    """Ask the kernel to interrupt what it is running; True when it acknowledged in time."""
    try:
        await asyncio.wait_for(
            _request(connection_info, "control", "interrupt_request"), timeout=timeout
        )
    except asyncio.TimeoutError:
        return False
    return True


async def request_gpu_reading(
    connection_info: Mapping[str, Any], *, timeout: float = 5.0
) -> dict[str, Any] | None:
    """The kernel's GPU reading as it sent it (``gpu_report``), on the control channel; None when
    it did not answer in time (an older image without the handler never answers)."""
    from bf_jupyter.kernels.gpu_report import GPU_REQUEST

    try:
        content = await asyncio.wait_for(
            _request(connection_info, "control", GPU_REQUEST), timeout=timeout
        )
    except asyncio.TimeoutError:
        return None
    return content if isinstance(content, dict) else None


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


async def _request(connection_info: Mapping[str, Any], channel: str, msg_type: str) -> Any:
    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session

    key = connection_info.get("key", b"")
    session = Session(
        key=key if isinstance(key, bytes) else str(key).encode(),
        signature_scheme=str(connection_info.get("signature_scheme", "hmac-sha256")),
    )
    url = (
        f"{connection_info.get('transport', 'tcp')}://{connection_info['ip']}:"
        f"{connection_info[f'{channel}_port']}"
    )
    context = zmq.asyncio.Context.instance()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RECONNECT_IVL, _RECONNECT_MS)
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, 200)
    public, secret = connection_info.get("curve_publickey"), connection_info.get("curve_secretkey")
    if public and secret:  # encrypted channels: a client holds the kernel's keypair
        socket.curve_serverkey = _as_bytes(public)
        socket.curve_publickey = _as_bytes(public)
        socket.curve_secretkey = _as_bytes(secret)
    try:
        socket.connect(url)
        sent = session.send(socket, msg_type, {})
        assert sent is not None, "Session.send returns the message it sent"
        while True:
            frames = await socket.recv_multipart()
            _, parts = session.feed_identities(frames)
            reply: dict[str, Any] = session.deserialize(parts)
            if reply["parent_header"].get("msg_id") == sent["header"]["msg_id"]:
                return reply["content"]
    finally:
        socket.close(linger=0)
