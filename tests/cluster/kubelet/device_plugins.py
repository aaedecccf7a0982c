"""The kubelet's device manager: the kubelet side of the device-plugin API for one node.

It serves ``Registration`` on ``<plugin dir>/kubelet.sock`` through ``tests.support.fake_kubelet``
(real v1beta1 gRPC over unix sockets). A plugin that registers there (``bf-jupyter device-plugin
--plugin-dir <that dir>``) has its ListAndWatch device list written into the Node's
``status.capacity`` and ``status.allocatable`` on the API server, which is what kube-scheduler binds
against; when a container of a bound pod requests the resource, ``Allocate`` is called for that many
devices and the plugin's envs and mounts are given to the container, as a kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bf_jupyter.quantity import QuantityError, parse_quantity

if TYPE_CHECKING:
    from tests.support.fake_kubelet import FakeKubelet

Obj = dict[str, Any]
PublishResources = Callable[[dict[str, str], dict[str, str]], Coroutine[Any, Any, None]]
_log = logging.getLogger(__name__)


class DeviceAllocationError(Exception):
    """Allocate failed or too few devices are free (kubelet's UnexpectedAdmissionError)."""


@dataclass
class Allocation:
    """What the plugins gave one container: env and mounts (container path → host path)."""

    env: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, Path] = field(default_factory=dict)


class DeviceManager:
    """``publish(capacity, allocatable)`` writes the device resources into the Node status."""

    def __init__(self, plugin_dir: Path, publish: PublishResources) -> None:
        self.plugin_dir = plugin_dir
        self._publish = publish
        self._kubelet: FakeKubelet | None = None
        self._pending: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self._capacity: dict[str, str] = {}  # every resource ever registered: its last capacity

    async def start(self) -> None:
        from tests.support.fake_kubelet import FakeKubelet

        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        self._kubelet = FakeKubelet(self.plugin_dir, on_devices=self._on_devices)
        await self._kubelet.start()
        self._pending = asyncio.get_running_loop().create_task(self._publish_changes())

    def _on_devices(self, resource: str, devices: Mapping[str, str]) -> None:
        """A ListAndWatch update: the node's capacity and allocatable follow it (coalesced)."""
        self._dirty.set()

    async def _publish_changes(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if self._kubelet is None:
                continue
            # a resource whose plugin went away keeps its capacity with nothing allocatable
            self._capacity.update(
                {r: str(self._kubelet.capacity(r)) for r in self._kubelet.plugins}
            )
            capacity = dict(self._capacity)
            allocatable = {
                r: str(self._kubelet.allocatable(r)) if r in self._kubelet.plugins else "0"
                for r in capacity
            }
            try:
                await self._publish(capacity, allocatable)
            except Exception as error:  # the API is briefly away: try again on the next change
                _log.warning("publishing device resources failed: %s", error)
                self._dirty.set()
                await asyncio.sleep(0.5)

    async def allocate(self, pod: Obj, container: Obj) -> Allocation:
        """Allocate the devices ``container`` requests of registered resources."""
        result = Allocation()
        if self._kubelet is None:
            return result
        requests = (container.get("resources") or {}).get("limits") or {}
        owner = self.owner(pod, container)
        self._kubelet.release(owner)  # a restarted container gets its devices afresh
        for resource, value in requests.items():
            if resource not in self._kubelet.plugins:
                continue
            try:
                count = int(parse_quantity(value))
            except QuantityError:
                continue
            if count <= 0:
                continue
            try:
                admission = await self._kubelet.admit(resource, count, container=owner)
            except Exception as error:
                raise DeviceAllocationError(
                    f"Allocate failed due to {error}, which is unexpected"
                ) from None
            result.env.update(admission.envs)
            for mount in getattr(admission.response, "mounts", []) or []:
                result.mounts[mount.container_path] = Path(mount.host_path)
        return result

    def release(self, pod: Obj) -> None:
        if self._kubelet is None:
            return
        spec = pod.get("spec") or {}
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            self._kubelet.release(self.owner(pod, container))

    @staticmethod
    def owner(pod: Obj, container: Obj) -> str:
        return f"{pod['metadata']['uid']}/{container.get('name', '')}"

    async def restart(self) -> None:
        """Restart the registration server as a restarted kubelet does: ``kubelet.sock`` is
        recreated and the plugin sockets beside it removed, so plugins must register again."""
        if self._kubelet is not None:
            await self._kubelet.restart(remove_plugin_sockets=True)
            self._dirty.set()

    async def stop(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
        if self._kubelet is not None:
            await self._kubelet.close()
            self._kubelet = None
