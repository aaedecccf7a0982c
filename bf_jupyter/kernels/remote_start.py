"""One start of a remote kernel, and what is the same for every backend: its ports, its
connection info, its CurveZMQ keys, and the race from the backend's signals to the kernel's first
``kernel_info_reply``. ``remote.RemoteKernelProvisioner`` drives these; backends produce the signals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from bf_jupyter.kernels.kernel_channels import await_kernel_info
from bf_jupyter.kernels.launcher import PORT_NAMES

if TYPE_CHECKING:
    from jupyter_client.connect import KernelConnectionInfo

    from bf_jupyter.kernels.progress import Stage
    from bf_jupyter.slice import GpuSlice

__all__ = [
    "Address",
    "Progress",
    "RemoteStart",
    "RemoteStartFailure",
    "connection_info",
    "curve_keys",
    "kernel_ports",
    "until_ready",
]


class RemoteStartFailure(Exception):
    """The backend says the kernel cannot start; the message is the one sentence to show."""


@dataclass(frozen=True)
class Progress:
    stage: Stage
    message: str


@dataclass(frozen=True)
class Address:
    ip: str


@dataclass(frozen=True)
class RemoteStart:
    """Everything a backend needs to start one generation of a kernel."""

    kernel_id: str
    generation: int
    gpu_slice: GpuSlice
    user: str
    command: list[str]
    ports: dict[str, int]
    key: bytes
    signature_scheme: str
    environment: dict[str, str]
    # CurveZMQ keypair when the channels are encrypted ({"curve_secretkey": ..., "curve_publickey": ...})
    curve_keys: dict[str, bytes] | None = None


def kernel_ports(base: int, generation: int) -> dict[str, int]:
    """The five channel ports of a kernel start. Starts alternate between two blocks so that a
    restarted kernel's ports differ: jupyter_server rebuilds its channels and activity watcher only
    when ports change, and a restarted kernel has a new address."""
    first = base + (len(PORT_NAMES) if generation % 2 == 0 else 0)
    return {name: first + i for i, name in enumerate(PORT_NAMES)}


def connection_info(start: RemoteStart, ip: str, kernel_name: str | None) -> KernelConnectionInfo:
    """What clients connect to a start's kernel at ``ip`` with."""
    # The key stays bytes, as KernelManager.session.key is: a str would not compare equal.
    info: dict[str, Any] = {
        "ip": ip,
        "transport": "tcp",
        "key": start.key,
        "signature_scheme": start.signature_scheme,
    }
    info.update({f"{name}_port": port for name, port in start.ports.items()})
    # Curve keys as text, as KernelManager.get_connection_info() gives them.
    info.update({field: value.decode() for field, value in (start.curve_keys or {}).items()})
    if kernel_name:
        info["kernel_name"] = kernel_name
    return cast("KernelConnectionInfo", info)


def curve_keys(km: Any) -> dict[str, bytes] | None:
    """A CurveZMQ keypair when the kernel manager's ``transport_encryption`` policy asks for one
    (jupyter_client 8.10+: 'required', or 'auto' with ``supported_encryption: ["curve"]`` in the
    kernelspec's metadata); the same keys across restarts. None leaves the channels plain, as
    jupyter_client does by default."""
    policy_of = getattr(km, "_transport_encryption_policy", None)
    if policy_of is None:
        return None
    policy = policy_of()
    supported = bool(getattr(km, "_kernel_supports_curve_encryption", lambda: False)())
    if policy == "disabled" or (policy == "auto" and not supported):
        return None
    if km.curve_publickey is None or km.curve_secretkey is None:
        import zmq

        km.curve_publickey, km.curve_secretkey = zmq.curve_keypair()
    return {"curve_secretkey": km.curve_secretkey, "curve_publickey": km.curve_publickey}


async def until_ready(
    signals: AsyncIterator[Progress | Address],
    start: RemoteStart,
    *,
    kernel_name: str | None,
    publish: Callable[[Stage, str], None],
) -> str:
    """Relay the backend's progress to ``publish``; probe the kernel once its address is known;
    return that address when the kernel answers. Raises ``RemoteStartFailure`` when the signals
    end first (or with the backend's reason)."""
    probe: asyncio.Future[Any] | None = None
    ip = ""
    upcoming: asyncio.Future[Any] = asyncio.ensure_future(anext(signals))
    try:
        while True:
            waiting = {upcoming} if probe is None else {upcoming, probe}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if probe is not None and probe.done():
                probe.result()
                publish("ready", f"Kernel ready on {ip} ({start.gpu_slice.describe()})")
                return ip
            try:
                signal_ = upcoming.result()
            except StopAsyncIteration:
                raise RemoteStartFailure("The kernel stopped before it was ready.") from None
            if isinstance(signal_, Progress):
                publish(signal_.stage, signal_.message)
            elif probe is None:
                ip = signal_.ip
                probe = asyncio.ensure_future(
                    await_kernel_info(connection_info(start, ip, kernel_name))
                )
            upcoming = asyncio.ensure_future(anext(signals))
    finally:
        for pending in (upcoming, probe):
            if pending is not None:
                pending.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*(p for p in (upcoming, probe) if p is not None))
