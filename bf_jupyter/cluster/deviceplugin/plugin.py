"""One device plugin's lifecycle: start → serve → register → watch health → stop.

``BitfusionDevicePlugin`` owns a run: the first pool probe, the gRPC server on its own unix socket
(dialled once to prove it answers before the kubelet is told about it), the registration on
``kubelet.sock`` and the health loop that republishes the device list when the pool changes. All
of that per-run state is created by ``start`` and cleared by ``stop``, so the same object can be
started again after a kubelet restart; ``stop`` is idempotent. When to restart is not its business:
``supervisor`` decides that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bf_jupyter.cluster.deviceplugin import api_pb2, api_pb2_grpc
from bf_jupyter.cluster.deviceplugin.inventory import Advertisement, advertise_unreachable
from bf_jupyter.cluster.deviceplugin.probe import PoolProbe, run_in_own_thread
from bf_jupyter.cluster.deviceplugin.service import DeviceBoard, DevicePluginService, plugin_options
from bf_jupyter.contract import QUOTA_RESOURCE, UNITS_PER_GPU

__all__ = [
    "API_VERSION",
    "KUBELET_SOCKET",
    "BitfusionDevicePlugin",
    "PluginSettings",
    "PluginStartError",
]

log = logging.getLogger(__name__)

API_VERSION = "v1beta1"
KUBELET_SOCKET = "kubelet.sock"
MAX_UNITS_PER_GPU = 1000
_DIAL_SECONDS = 5.0  # proving our own socket answers, and registering with the kubelet
_STOP_GRACE_SECONDS = 1.0  # open calls may finish; ListAndWatch streams end as soon as we close
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
_RESOURCE_NAME = re.compile(
    r"^(?P<domain>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/"
    r"(?P<name>[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$"
)
ProbeFunction = Callable[[Advertisement | None], Advertisement]


class PluginStartError(RuntimeError):
    """A start step failed (listen, self-dial or registration); the message names the step and why.
    Usually temporary (the kubelet is restarting): the supervisor retries with backoff."""


@dataclass(frozen=True)
class PluginSettings:
    """What one plugin advertises and where. Raises ``ValueError`` naming the setting, the value
    and what is accepted when a value cannot work."""

    plugin_dir: Path
    resource_name: str = QUOTA_RESOURCE
    units_per_gpu: int = UNITS_PER_GPU
    health_interval: float = 10.0
    probe_timeout: float = 15.0

    def __post_init__(self) -> None:
        match = _RESOURCE_NAME.match(self.resource_name)
        if match is None or len(match["name"]) > 63 or len(match["domain"]) > 253:
            raise ValueError(
                f"resource name {self.resource_name!r} is not an extended resource name: "
                "use <domain>/<name>, e.g. bitfusion.io/gpu"
            )
        if match["domain"] == "kubernetes.io" or match["domain"].endswith(".kubernetes.io"):
            raise ValueError(
                f"resource name {self.resource_name!r} is in the kubernetes.io domain, which the "
                "kubelet keeps for itself: use your own domain, e.g. bitfusion.io/gpu"
            )
        if not 1 <= self.units_per_gpu <= MAX_UNITS_PER_GPU:
            raise ValueError(
                f"units per GPU {self.units_per_gpu} is out of range: use 1–{MAX_UNITS_PER_GPU}"
            )
        for name, seconds in (
            ("health interval", self.health_interval),
            ("probe timeout", self.probe_timeout),
        ):
            if not seconds > 0:
                raise ValueError(f"{name} {seconds:g} s is too short: use more than 0 seconds")
        if len(str(self.socket_path).encode()) > _SOCKET_PATH_MAX:
            raise ValueError(
                f"plugin directory {self.plugin_dir} is too long for a unix socket path "
                f"({self.socket_path} exceeds {_SOCKET_PATH_MAX} bytes)"
            )

    @property
    def kubelet_socket(self) -> Path:
        return self.plugin_dir / KUBELET_SOCKET

    @property
    def socket_name(self) -> str:
        """Our socket's file name, from the resource: ``bf-jupyter-bitfusion.io-gpu.sock``."""
        return "bf-jupyter-" + self.resource_name.replace("/", "-") + ".sock"

    @property
    def socket_path(self) -> Path:
        return self.plugin_dir / self.socket_name


@dataclass
class _Run:
    """The state of one run; a fresh one per ``start``."""

    board: DeviceBoard
    server: Any = None  # grpc.aio.Server
    health_task: asyncio.Task[None] | None = None


class BitfusionDevicePlugin:
    """Advertises ``settings.resource_name`` to the kubelet: units-per-GPU × the pool's GPUs."""

    def __init__(self, settings: PluginSettings, *, probe: ProbeFunction | None = None) -> None:
        self.settings = settings
        self._probe: ProbeFunction = probe or PoolProbe(
            units_per_gpu=settings.units_per_gpu, timeout=settings.probe_timeout
        )
        # Outlives runs on purpose: a restart serves it at once, and when the pool cannot be
        # listed the last known devices turn unhealthy instead of vanishing.
        self._last: Advertisement | None = None
        self._probing: asyncio.Task[Advertisement] | None = None  # the probe in flight, if any
        self._run: _Run | None = None

    @property
    def running(self) -> bool:
        return self._run is not None

    @property
    def advertisement(self) -> Advertisement | None:
        """The device list as last probed (None before the first probe)."""
        return self._last

    async def start(self) -> None:
        """Probe the pool, serve on our socket, prove it answers, register, start the health loop.

        Raises ``PluginStartError`` when a step fails; whatever the failed start built is stopped.
        Raises ``RuntimeError`` when already running.
        """
        if self._run is not None:
            raise RuntimeError(
                f"{self.settings.resource_name}: the device plugin is already running"
            )
        name = self.settings.resource_name
        try:
            # A restart serves the last known list at once and probes in the background, so a
            # slow client never delays re-registration past the kubelet's patience.
            cached = self._last
            first = cached or await self._probe_pool()
            self._run = _Run(board=DeviceBoard(first))
            log.info(
                "%s: %s: %s", name, "last known" if cached else "pool probed", first.describe()
            )
            await self._serve(self._run)
            log.info("%s: serving on %s", name, self.settings.socket_path)
            await self._register()
            log.info("%s: registered with the kubelet at %s", name, self.settings.kubelet_socket)
            self._run.health_task = asyncio.create_task(
                self._watch_health(self._run.board, probe_first=cached is not None),
                name=f"device-plugin health {name}",
            )
            self._run.health_task.add_done_callback(self._health_task_ended)
        except BaseException:
            await self.stop(wait_for_probe=False)  # a retry may share a probe still in flight
            raise

    async def stop(self, *, wait_for_probe: bool = True) -> None:
        """End the run: close the streams, stop the health loop and server, remove our socket.

        A probe in flight is not cut short (the client's timeout bounds it): with
        ``wait_for_probe`` stop returns once it ended, so no thread is left; a restart passes False
        and the next run shares that probe's answer. Idempotent, safe after a failed start, never
        raises for an already missing socket.
        """
        run, self._run = self._run, None
        if run is not None:
            run.board.close()  # ListAndWatch streams end, so the server stops without cutting them
            if run.health_task is not None:
                run.health_task.cancel()
                await asyncio.gather(run.health_task, return_exceptions=True)
            if run.server is not None:
                await run.server.stop(_STOP_GRACE_SECONDS)
            _remove_socket(self.settings.socket_path)
            log.info("%s: stopped", self.settings.resource_name)
        if wait_for_probe and self._probing is not None:
            await asyncio.wait({self._probing})

    async def _serve(self, run: _Run) -> None:
        path = self.settings.socket_path
        try:  # a socket left by a previous run or a killed process: grpc cannot bind over it
            _remove_socket(path)
        except OSError as error:
            raise PluginStartError(f"cannot clear the way for our socket {path}: {error}") from None
        server = grpc.aio.server()
        run.server = server
        api_pb2_grpc.add_DevicePluginServicer_to_server(
            DevicePluginService(run.board, resource_name=self.settings.resource_name), server
        )
        try:
            server.add_insecure_port(f"unix:{path}")
        except RuntimeError as error:
            raise PluginStartError(f"cannot listen on {path}: {error}") from None
        await server.start()
        with contextlib.suppress(OSError):
            path.chmod(0o600)  # only the kubelet (root) has business on this socket
        await self._dial(path)

    async def _dial(self, path: Path) -> None:
        """Prove the server answers on ``path`` before the kubelet is sent to it."""
        async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
            try:
                await api_pb2_grpc.DevicePluginStub(channel).GetDevicePluginOptions(
                    api_pb2.Empty(), timeout=_DIAL_SECONDS, wait_for_ready=True
                )
            except grpc.aio.AioRpcError as error:
                raise PluginStartError(
                    f"our own socket {path} did not answer: {error.code().name}: {error.details()}"
                ) from None

    async def _register(self) -> None:
        kubelet = self.settings.kubelet_socket
        request = api_pb2.RegisterRequest(
            version=API_VERSION,
            endpoint=self.settings.socket_name,
            resource_name=self.settings.resource_name,
            options=plugin_options(),
        )
        async with grpc.aio.insecure_channel(f"unix:{kubelet}") as channel:
            try:
                await api_pb2_grpc.RegistrationStub(channel).Register(
                    request, timeout=_DIAL_SECONDS
                )
            except grpc.aio.AioRpcError as error:
                raise PluginStartError(
                    f"could not register {self.settings.resource_name} with the kubelet at "
                    f"{kubelet}: {error.code().name}: {error.details()}"
                ) from None

    async def _watch_health(self, board: DeviceBoard, *, probe_first: bool) -> None:
        name = self.settings.resource_name
        if not probe_first:
            await asyncio.sleep(self.settings.health_interval)
        while True:
            before = board.current
            if board.publish(await self._probe_pool()):
                after = board.current
                level = logging.INFO if after.healthy else logging.WARNING
                log.log(
                    level,
                    "%s: device list changed: %s → %s",
                    name,
                    before.describe(),
                    after.describe(),
                )
            await asyncio.sleep(self.settings.health_interval)

    async def _probe_pool(self) -> Advertisement:
        """The pool now. One probe at a time: callers share the one in flight, and a caller that
        is cancelled (a restart) leaves it running to completion."""
        if self._probing is None:
            self._probing = asyncio.create_task(
                self._probe_and_remember(),
                name=f"device-plugin probe {self.settings.resource_name}",
            )
        return await asyncio.shield(self._probing)

    async def _probe_and_remember(self) -> Advertisement:
        previous = self._last
        try:
            advertisement = await run_in_own_thread(
                lambda: self._probe(previous), name="bf-device-plugin-probe"
            )
        except Exception as error:  # a bug in a probe must not end the loop: report it as unhealthy
            log.exception("%s: probing the pool failed", self.settings.resource_name)
            advertisement = advertise_unreachable(
                previous, f"probe failed: {error}", units_per_gpu=self.settings.units_per_gpu
            )
        finally:
            self._probing = None
        self._last = advertisement
        return advertisement

    def _health_task_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s: the health loop ended: %s; the device list is frozen until the next restart",
                self.settings.resource_name,
                task.exception(),
            )


def _remove_socket(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
