"""The kubelet's device manager for the emulated nodes: the kubelet side of the device-plugin API.

Each node serves ``Registration`` on ``<node dir>/device-plugins/kubelet.sock`` through the fake
kubelet in ``tests/support/fake_kubelet.py`` (real v1beta1 gRPC over unix sockets). A plugin that
registers there (e.g. ``bf-jupyter device-plugin --plugin-dir <that dir>``) has its ListAndWatch
device list reflected in the Node's ``status.capacity``/``allocatable``, which is what the scheduler
binds against; when a container of a bound pod requests the resource, ``Allocate`` is called for
that many devices and the plugin's env is given to the container, as a kubelet does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bf_jupyter.quantity import QuantityError, parse_quantity
from tests.emulator.kinds import resource_for_kind

if TYPE_CHECKING:
    from tests.emulator.registry import Registry
    from tests.support.fake_kubelet import FakeKubelet

Obj = dict[str, Any]


class DeviceAllocationError(Exception):
    """Allocate failed or too few devices are free (kubelet's UnexpectedAdmissionError)."""


class DeviceManager:
    def __init__(self, registry: Registry, node_name: str, plugin_dir: Path) -> None:
        self.registry = registry
        self.node_name = node_name
        self.plugin_dir = plugin_dir
        self._kubelet: FakeKubelet | None = None
        self._resources: dict[str, Mapping[str, str]] = {}

    async def start(self) -> None:
        from tests.support.fake_kubelet import FakeKubelet

        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        self._kubelet = FakeKubelet(self.plugin_dir, on_devices=self._on_devices)
        await self._kubelet.start()

    def _on_devices(self, resource: str, devices: Mapping[str, str]) -> None:
        """A ListAndWatch update: the node's capacity and allocatable follow it."""
        self._resources[resource] = dict(devices)
        nodes = resource_for_kind("Node")
        node = self.registry.store.find(nodes, "", self.node_name)
        if node is None:
            return
        status = node.setdefault("status", {})
        status.setdefault("capacity", {})[resource] = str(len(devices))
        status.setdefault("allocatable", {})[resource] = str(
            sum(1 for health in devices.values() if health == "Healthy")
        )
        self.registry.update_status_now(nodes, node)

    async def allocate(self, pod: Obj, container: Obj) -> dict[str, str]:
        """Allocate the devices ``container`` requests of registered resources; the plugin's env."""
        if self._kubelet is None:
            return {}
        env: dict[str, str] = {}
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
            env.update(admission.envs)
        return env

    def release(self, pod: Obj) -> None:
        if self._kubelet is None:
            return
        spec = pod.get("spec") or {}
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            self._kubelet.release(self.owner(pod, container))

    @staticmethod
    def owner(pod: Obj, container: Obj) -> str:
        return f"{pod['metadata']['uid']}/{container.get('name', '')}"

    async def wait_for(self, resource: str, units: int, timeout: float = 10) -> None:
        """Until ``units`` devices of ``resource`` are healthy (a plugin registered and listed)."""
        assert self._kubelet is not None
        await self._kubelet.wait_until(lambda k: k.allocatable(resource) >= units, timeout=timeout)

    async def stop(self) -> None:
        if self._kubelet is not None:
            await self._kubelet.close()
            await asyncio.sleep(0)
