"""When the device plugin (re)starts: the kubelet came back, SIGHUP, or a failed start's retry.

A restarting kubelet recreates ``kubelet.sock`` (and wipes the plugin sockets beside it) and forgets
every plugin, so the plugin must register again. The supervisor notices by polling ``stat`` of the
socket: a new inode or change time is a new kubelet. Polling costs one ``stat`` per interval, needs
no inotify binding, and with the default half-second interval re-registration takes well under the
5 s the kubelet tolerates. A start that fails is retried with exponential backoff, immediately
when the kubelet socket changes meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from bf_jupyter.cluster.deviceplugin.plugin import BitfusionDevicePlugin, PluginStartError

__all__ = ["Backoff", "Control", "SocketIdentity", "socket_identity", "supervise"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SocketIdentity:
    """Which file a path names: a recreated socket differs in inode or change time."""

    device: int
    inode: int
    changed_ns: int


def socket_identity(path: Path) -> SocketIdentity | None:
    """The identity of the file at ``path``, or None when there is none (or it cannot be read)."""
    try:
        status = path.stat()
    except OSError:
        return None
    return SocketIdentity(status.st_dev, status.st_ino, status.st_ctime_ns)


@dataclass
class Backoff:
    """Delays between failed starts: ``initial``, doubling, at most ``maximum`` seconds."""

    initial: float = 1.0
    maximum: float = 30.0
    _next: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        delay = self._next or self.initial
        self._next = min(delay * 2, self.maximum)
        return min(delay, self.maximum)

    def reset(self) -> None:
        self._next = 0.0


class Control:
    """Requests from outside the supervisor (signal handlers, tests): stop, or restart now."""

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self.stop_requested = False
        self.restart_requested = False

    def request_stop(self) -> None:
        self.stop_requested = True
        self._wake.set()

    def request_restart(self) -> None:
        self.restart_requested = True
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        """Return after ``timeout`` seconds, or at once when a request arrives."""
        with contextlib.suppress(asyncio.TimeoutError):  # not the builtin before 3.11
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()


async def supervise(
    plugin: BitfusionDevicePlugin,
    control: Control,
    *,
    check_interval: float = 0.5,
    backoff: Backoff | None = None,
) -> None:
    """Keep ``plugin`` registered until ``control.request_stop()``; then stop it and return.

    Restarts it (stop, then start) when the kubelet socket is recreated, when our own socket
    disappears, or on ``control.request_restart()``; retries a failed start after a backoff delay.
    """
    backoff = backoff or Backoff()
    name = plugin.settings.resource_name
    try:
        while not control.stop_requested:
            kubelet = socket_identity(plugin.settings.kubelet_socket)
            retry_in: float | None = None
            try:
                await plugin.start()
                backoff.reset()
            except PluginStartError as error:
                retry_in = backoff.next_delay()
                log.warning("%s: start failed: %s; retrying in %g s", name, error, retry_in)
            reason = await _wait_for_restart(
                plugin, control, kubelet=kubelet, retry_in=retry_in, check_interval=check_interval
            )
            if reason:
                log.info("%s: restarting: %s", name, reason)
            # A slow probe in flight must not hold up re-registration: the next run shares it.
            await plugin.stop(wait_for_probe=reason is None)
    finally:
        await plugin.stop()


async def _wait_for_restart(
    plugin: BitfusionDevicePlugin,
    control: Control,
    *,
    kubelet: SocketIdentity | None,
    retry_in: float | None,
    check_interval: float,
) -> str | None:
    """Why the current run should end (None: a stop was requested)."""
    loop = asyncio.get_running_loop()
    deadline = None if retry_in is None else loop.time() + retry_in
    settings = plugin.settings
    while True:
        if control.stop_requested:
            return None
        if control.restart_requested:
            control.restart_requested = False
            return "restart requested (SIGHUP)"
        now = socket_identity(settings.kubelet_socket)
        if now is not None and now != kubelet:
            return f"the kubelet socket {settings.kubelet_socket} was recreated"
        if plugin.running and not settings.socket_path.exists():
            return f"our socket {settings.socket_path} was removed"
        if deadline is not None and loop.time() >= deadline:
            return "retrying the failed start"
        timeout = (
            check_interval if deadline is None else min(check_interval, deadline - loop.time())
        )
        await control.wait(max(timeout, 0.0))
