"""A kubelet's device-plugin side over the real v1beta1 gRPC API, for tests and the emulated cluster.

``FakeKubelet`` serves ``Registration`` on ``<plugin_dir>/kubelet.sock``. On ``Register`` it checks
the request as a kubelet does, dials the plugin's socket and keeps a ListAndWatch stream open in the
background, so it always knows each resource's latest device list: what a node's capacity and
allocatable would show (``node_resources()``). It can ask for preferred allocations and allocate
devices to containers the way the kubelet's device manager does (``admit``/``release``), and it can
be stopped and restarted, recreating ``kubelet.sock`` (and, like a real kubelet, optionally wiping
the plugin sockets beside it) to exercise re-registration.

Everything is asyncio (grpc.aio) and must run on one event loop. State changes wake
``wait_until``, so callers await a condition with a timeout instead of sleeping::

    async with FakeKubelet() as kubelet:              # a short temporary plugin directory
        ...start a plugin with --plugin-dir kubelet.plugin_dir...
        await kubelet.wait_until(lambda k: k.allocatable("bitfusion.io/gpu") == 200)
        admission = await kubelet.admit("bitfusion.io/gpu", 50, container="pod-a/main")
        admission.envs["BF_JUPYTER_GPU_UNITS"]  # "50"

When a plugin's stream ends the resource's devices turn Unhealthy (allocatable 0, capacity kept),
as on a real node until the plugin registers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bf_jupyter.cluster.deviceplugin import api_pb2, api_pb2_grpc

__all__ = ["Admission", "FakeKubelet", "InsufficientDevices", "PluginView", "Registration"]

API_VERSION = "v1beta1"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
_RECHECK_SECONDS = 0.05


class InsufficientDevices(RuntimeError):
    """Fewer healthy, unallocated devices than a container asks for (the kubelet's admission error)."""


@dataclass(frozen=True)
class Registration:
    """One ``Register`` call as the kubelet received it."""

    resource_name: str
    version: str
    endpoint: str
    preferred_allocation: bool
    pre_start_required: bool
    received_at: float = field(default_factory=time.monotonic, compare=False)


@dataclass
class PluginView:
    """What the kubelet knows about one registered resource."""

    registration: Registration
    devices: dict[str, str] = field(default_factory=dict)  # device ID → Healthy/Unhealthy
    updates: int = 0  # ListAndWatch messages received on the current stream
    connected: bool = False  # a ListAndWatch stream is open
    ended_with: str | None = None  # how the last stream ended: "OK" or a gRPC status name
    updated_at: float | None = None  # time.monotonic() of the last list received

    @property
    def capacity(self) -> int:
        return len(self.devices)

    @property
    def allocatable(self) -> int:
        return sum(1 for health in self.devices.values() if health == HEALTHY)


@dataclass(frozen=True)
class Admission:
    """Devices given to one container and the plugin's Allocate answer for them."""

    container: str
    device_ids: tuple[str, ...]
    envs: Mapping[str, str]
    response: Any  # api_pb2.ContainerAllocateResponse


class FakeKubelet:
    """Registration server + device-manager client. ``plugin_dir`` None: a fresh short temp dir
    (unix socket paths are limited to 107 bytes), removed by ``close``/``async with``."""

    def __init__(
        self,
        plugin_dir: Path | None = None,
        *,
        on_devices: Callable[[str, Mapping[str, str]], None] | None = None,
    ) -> None:
        self._owns_dir = plugin_dir is None
        self.plugin_dir = plugin_dir or Path(tempfile.mkdtemp(prefix="bf-kubelet-"))
        self.socket_path = self.plugin_dir / "kubelet.sock"
        self.registrations: list[Registration] = []  # every Register call, across restarts
        self.plugins: dict[str, PluginView] = {}  # resource name → latest view (this kubelet run)
        self.allocated: dict[str, dict[str, str]] = {}  # resource → device ID → container
        self._on_devices = on_devices
        self._changed = asyncio.Condition()
        self._server: Any = None
        self._streams: dict[str, tuple[Any, asyncio.Task[None]]] = {}  # resource → (channel, task)

    async def __aenter__(self) -> FakeKubelet:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Serve Registration on a new ``kubelet.sock``."""
        server = grpc.aio.server()
        api_pb2_grpc.add_RegistrationServicer_to_server(_RegistrationService(self), server)
        server.add_insecure_port(f"unix:{self.socket_path}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        """Stop serving, drop every plugin connection and remove ``kubelet.sock``. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(0)
        for resource in list(self._streams):
            await self._disconnect(resource)
        self.plugins.clear()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        await self._notify()

    async def restart(self, *, remove_plugin_sockets: bool = False) -> None:
        """Stop, then start on a recreated ``kubelet.sock``. With ``remove_plugin_sockets`` also
        delete the other sockets in the directory first, as a real kubelet does at start-up."""
        await self.stop()
        if remove_plugin_sockets:
            for path in self.plugin_dir.glob("*.sock"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        await self.start()

    async def close(self) -> None:
        """``stop``, and remove the plugin directory if this kubelet created it."""
        await self.stop()
        if self._owns_dir:
            shutil.rmtree(self.plugin_dir, ignore_errors=True)

    # What a node would report.

    def plugin(self, resource: str) -> PluginView:
        """The view of ``resource``; raises ``KeyError`` when no plugin registered it."""
        return self.plugins[resource]

    def capacity(self, resource: str) -> int:
        view = self.plugins.get(resource)
        return view.capacity if view else 0

    def allocatable(self, resource: str) -> int:
        view = self.plugins.get(resource)
        return view.allocatable if view else 0

    def node_resources(self) -> dict[str, dict[str, str]]:
        """``{"capacity": {resource: "N"}, "allocatable": {...}}`` for a Node's status."""
        return {
            "capacity": {name: str(view.capacity) for name, view in self.plugins.items()},
            "allocatable": {name: str(view.allocatable) for name, view in self.plugins.items()},
        }

    async def wait_until(
        self, condition: Callable[[FakeKubelet], bool], *, timeout: float = 10.0
    ) -> None:
        """Return once ``condition(self)`` holds; raises ``TimeoutError`` describing the state.

        Checked after every change the kubelet sees, and every 50 ms for conditions that also
        look at the outside world (a file, a counter).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while not condition(self):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout:g} s; {self.describe()}")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, _RECHECK_SECONDS))

    async def wait_registered(
        self, resource: str, *, count: int = 1, timeout: float = 10.0
    ) -> PluginView:
        """The view of ``resource`` once it registered ``count`` times and its list arrived."""

        def ready(kubelet: FakeKubelet) -> bool:
            view = kubelet.plugins.get(resource)
            registered = sum(r.resource_name == resource for r in kubelet.registrations)
            return registered >= count and view is not None and view.updates > 0

        await self.wait_until(ready, timeout=timeout)
        return self.plugins[resource]

    def describe(self) -> str:
        views = ", ".join(
            f"{name}: {v.allocatable}/{v.capacity} healthy, {v.updates} updates, "
            f"{'connected' if v.connected else f'ended {v.ended_with}'}"
            for name, v in self.plugins.items()
        )
        return f"{len(self.registrations)} registrations; {views or 'no plugins'}"

    # Calls a kubelet makes to a plugin.

    async def get_preferred_allocation(
        self,
        resource: str,
        *,
        available: Sequence[str],
        size: int,
        must_include: Sequence[str] = (),
    ) -> list[str]:
        request = api_pb2.PreferredAllocationRequest(
            container_requests=[
                api_pb2.ContainerPreferredAllocationRequest(
                    available_deviceIDs=list(available),
                    must_include_deviceIDs=list(must_include),
                    allocation_size=size,
                )
            ]
        )
        response = await self._stub(resource).GetPreferredAllocation(request, timeout=10)
        return list(response.container_responses[0].deviceIDs)

    async def allocate(self, resource: str, device_ids: Sequence[str]) -> Any:
        """Allocate for one container; the plugin's ``ContainerAllocateResponse``. A refusal
        raises ``grpc.aio.AioRpcError``."""
        request = api_pb2.AllocateRequest(
            container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=list(device_ids))]
        )
        response = await self._stub(resource).Allocate(request, timeout=10)
        return response.container_responses[0]

    async def admit(self, resource: str, count: int, *, container: str) -> Admission:
        """Give ``container`` ``count`` healthy free devices as the device manager does: the
        plugin's preferred choice when it offers one, then Allocate. Raises ``InsufficientDevices``."""
        view = self.plugin(resource)
        taken = self.allocated.setdefault(resource, {})
        free = [d for d, health in view.devices.items() if health == HEALTHY and d not in taken]
        if len(free) < count:
            raise InsufficientDevices(
                f"{container} needs {count} {resource}, {len(free)} of {view.capacity} are free and healthy"
            )
        chosen = free[:count]
        if view.registration.preferred_allocation:
            preferred = await self.get_preferred_allocation(resource, available=free, size=count)
            if len(preferred) == count and set(preferred) <= set(free):
                chosen = preferred
        response = await self.allocate(resource, chosen)
        for device_id in chosen:
            taken[device_id] = container
        return Admission(container, tuple(chosen), dict(response.envs), response)

    def release(self, container: str) -> None:
        """Return the devices of ``container`` (its pod ended)."""
        for taken in self.allocated.values():
            for device_id in [d for d, owner in taken.items() if owner == container]:
                del taken[device_id]

    # Internals.

    def _stub(self, resource: str) -> Any:
        if resource not in self._streams:
            raise KeyError(f"no plugin is connected for {resource}; {self.describe()}")
        return api_pb2_grpc.DevicePluginStub(self._streams[resource][0])

    async def _accept(self, request: Any) -> str | None:
        """Register: None when accepted, else why not (the kubelet's checks)."""
        if request.version != API_VERSION:
            return (
                f"version {request.version!r} is not supported: this kubelet speaks {API_VERSION}"
            )
        if "/" not in request.resource_name or request.resource_name.startswith("kubernetes.io/"):
            return f"{request.resource_name!r} is not an extended resource name"
        endpoint = self.plugin_dir / request.endpoint
        if "/" in request.endpoint or not endpoint.exists():
            return f"endpoint {request.endpoint!r} is not a socket in {self.plugin_dir}"
        registration = Registration(
            request.resource_name,
            request.version,
            request.endpoint,
            request.options.get_preferred_allocation_available,
            request.options.pre_start_required,
        )
        self.registrations.append(registration)
        await self._disconnect(request.resource_name)  # a new registration replaces the old one
        view = PluginView(registration)
        self.plugins[request.resource_name] = view
        channel = grpc.aio.insecure_channel(f"unix:{endpoint}")
        task = asyncio.create_task(
            self._watch(view, channel), name=f"kubelet watch {request.resource_name}"
        )
        self._streams[request.resource_name] = (channel, task)
        await self._notify()
        return None

    async def _watch(self, view: PluginView, channel: Any) -> None:
        resource = view.registration.resource_name
        call = api_pb2_grpc.DevicePluginStub(channel).ListAndWatch(api_pb2.Empty())
        view.connected = True
        try:
            async for response in call:
                view.devices = {device.ID: device.health for device in response.devices}
                view.updates += 1
                view.updated_at = time.monotonic()
                if self._on_devices is not None:
                    self._on_devices(resource, dict(view.devices))
                await self._notify()
            view.ended_with = "OK"
        except grpc.aio.AioRpcError as error:
            view.ended_with = error.code().name
        except asyncio.CancelledError:
            view.ended_with = "CANCELLED"  # this kubelet hung up (restart, new registration)
            call.cancel()
            raise
        finally:
            view.connected = False
            view.devices = dict.fromkeys(view.devices, UNHEALTHY)
            with contextlib.suppress(RuntimeError):  # the loop may be closing
                await asyncio.shield(self._notify())

    async def _disconnect(self, resource: str) -> None:
        entry = self._streams.pop(resource, None)
        if entry is None:
            return
        channel, task = entry
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await channel.close()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


class _RegistrationService:
    """``v1beta1.Registration`` served by ``FakeKubelet``."""

    def __init__(self, kubelet: FakeKubelet) -> None:
        self._kubelet = kubelet

    async def Register(self, request: Any, context: Any) -> Any:
        refusal = await self._kubelet._accept(request)
        if refusal is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refusal)
        return api_pb2.Empty()
