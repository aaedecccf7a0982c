"""The process-kubelet's DRA driver: it publishes a ResourceSlice for the node's fake GPUs and
"prepares" the allocated claims of the pods it starts, as NVIDIA's k8s-dra-driver-gpu kubelet
plugin does (its device attributes, its ``GpuConfig`` sharing settings), without a GPU.

- Publishing: one ResourceSlice (driver ``gpu.nvidia.com``, pool = the node, ``nodeName`` set,
  owned by the Node) whose devices carry the driver's attributes ``type`` (``gpu`` or ``mig``),
  ``productName``, ``index``, ``uuid`` (and ``profile`` for MIG) and the ``memory`` capacity; a
  ``shared`` GPU allows multiple allocations, so the scheduler accounts its memory per claim
  (consumable capacity). The Node authorizer lets a node write only slices naming it.
- Preparing: for each claim a container uses, the claim named in the pod's
  ``status.resourceClaimStatuses`` is read (the Node authorizer allows claims of pods bound to
  the node); its ``status.allocation`` gives the devices (``CUDA_VISIBLE_DEVICES`` with their
  indices, ``NVIDIA_VISIBLE_DEVICES`` with their UUIDs) and the opaque configuration (MPS:
  ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``, ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``; both strategies:
  ``GPU_SHARING_STRATEGY``, this stand-in's marker). A claim that is not allocated fails the
  container, as a kubelet's failed NodePrepareResources does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bf_jupyter.kubeapi import KubeApiError
from bf_jupyter.quantity import parse_quantity

if TYPE_CHECKING:
    from bf_jupyter.kubeapi import KubeApi
    from tests.cluster.kubelet.node_api import NodeApi

Obj = dict[str, Any]
DRIVER = "gpu.nvidia.com"
_MIB = 1 << 20
_RETRY_SECONDS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)


class ClaimNotPrepared(RuntimeError):
    """A claim of the pod cannot be prepared (missing, or not allocated); the message says which."""


@dataclass(frozen=True)
class FakeGpu:
    """One device the driver publishes: a GPU, or a MIG device when ``mig_profile`` is set."""

    index: int
    product: str = "NVIDIA A100-SXM4-40GB"
    memory: str = "40Gi"
    shared: bool = False  # allowMultipleAllocations: claims consume its memory capacity
    mig_profile: str | None = None  # e.g. "1g.10gb"

    @property
    def name(self) -> str:
        return f"{'mig' if self.mig_profile else 'gpu'}-{self.index}"

    def uuid(self, node: str) -> str:
        return f"{'MIG' if self.mig_profile else 'GPU'}-{node}-{self.index}"

    def device(self, node: str) -> Obj:
        attributes: Obj = {
            "type": {"string": "mig" if self.mig_profile else "gpu"},
            "productName": {"string": self.product},
            "index": {"int": self.index},
            "uuid": {"string": self.uuid(node)},
        }
        if self.mig_profile:
            attributes["profile"] = {"string": self.mig_profile}
        device: Obj = {
            "name": self.name,
            "attributes": attributes,
            "capacity": {"memory": {"value": self.memory}},
        }
        if self.shared:
            device["allowMultipleAllocations"] = True
        return device


def device_classes(driver: str = DRIVER) -> list[Obj]:
    """The DeviceClasses a cluster with this driver has (NVIDIA's chart installs the first two):
    ``gpu.nvidia.com`` (whole GPUs), ``mig.nvidia.com`` and ``shared.gpu.nvidia.com`` (GPUs
    whose memory is consumable capacity)."""

    def device_class(name: str, expression: str) -> Obj:
        return {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "DeviceClass",
            "metadata": {"name": name},
            "spec": {"selectors": [{"cel": {"expression": expression}}]},
        }

    typed = f'device.driver == "{driver}" && device.attributes["{driver}"].type == '
    return [
        device_class("gpu.nvidia.com", typed + '"gpu" && !device.allowMultipleAllocations'),
        device_class("mig.nvidia.com", typed + '"mig"'),
        device_class("shared.gpu.nvidia.com", typed + '"gpu" && device.allowMultipleAllocations'),
    ]


def ensure_device_classes(api: KubeApi, driver: str = DRIVER) -> None:
    """Create the DeviceClasses unless they exist (they are cluster-wide and shared by tests)."""
    for obj in device_classes(driver):
        try:
            api.create("DeviceClass", obj)
        except KubeApiError as error:
            if error.status != 409:
                raise


class DraDriver:
    """One node's driver: ``publish()`` at start, ``prepare()`` per container, ``withdraw()``."""

    def __init__(self, api: NodeApi, node: str, gpus: Sequence[FakeGpu], driver: str = DRIVER):
        self.api = api
        self.node = node
        self.gpus = {gpu.name: gpu for gpu in gpus}
        self.driver = driver
        self.slice_name = f"{node}-{driver.replace('.', '-')}"

    async def publish(self, node_uid: str) -> None:
        body = {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {
                "name": self.slice_name,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": node_uid}
                ],
            },
            "spec": {
                "driver": self.driver,
                "nodeName": self.node,
                "pool": {"name": self.node, "generation": 1, "resourceSliceCount": 1},
                "devices": [gpu.device(self.node) for gpu in self.gpus.values()],
            },
        }
        try:
            await self.api.call(self.api.api.create, "ResourceSlice", body)
        except KubeApiError as error:
            if error.status != 409:  # a slice left by an earlier start of this node: replace it
                raise
            await self.withdraw()
            await self.api.call(self.api.api.create, "ResourceSlice", body)

    async def withdraw(self) -> None:
        """Delete the slice (as a driver does when it stops); never raises for a missing one."""
        with contextlib.suppress(KubeApiError):
            await self.api.call(self.api.api.delete, "ResourceSlice", self.slice_name)

    async def prepare(self, pod: Obj, container: Obj) -> dict[str, str]:
        """The env the container's allocated claims give it. Raises ``ClaimNotPrepared``."""
        wanted = [c.get("name") for c in (container.get("resources") or {}).get("claims") or []]
        if not wanted:
            return {}
        meta = pod["metadata"]
        names = await self._claim_names(pod)
        env: dict[str, str] = {}
        indices: list[str] = []
        uuids: list[str] = []
        limits: list[str] = []
        for claim_name in wanted:
            name = names.get(str(claim_name))
            if name is None:
                raise ClaimNotPrepared(f"pod claim {claim_name} has no ResourceClaim yet")
            claim = await self._read_claim(meta["namespace"], name)
            allocation = ((claim or {}).get("status") or {}).get("allocation")
            if not allocation:
                raise ClaimNotPrepared(f"ResourceClaim {name} is not allocated")
            sharing = self._sharing(allocation)
            for result in (allocation.get("devices") or {}).get("results") or []:
                gpu = self.gpus.get(str(result.get("device")))
                if result.get("driver") != self.driver or gpu is None:
                    continue
                indices.append(str(gpu.index))
                uuids.append(gpu.uuid(self.node))
                consumed = (result.get("consumedCapacity") or {}).get("memory")
                limit = (sharing.get("mpsConfig") or {}).get("defaultPinnedDeviceMemoryLimit")
                if limit or consumed:
                    mib = int(parse_quantity(str(limit or consumed))) // _MIB
                    limits.append(f"{len(indices) - 1}={mib}M")
            if sharing.get("strategy"):
                env["GPU_SHARING_STRATEGY"] = str(sharing["strategy"])
            threads = (sharing.get("mpsConfig") or {}).get("defaultActiveThreadPercentage")
            if threads is not None:
                env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(threads)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(indices)
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(uuids)
        if limits:
            env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = ",".join(limits)
        return env

    async def _read_claim(self, namespace: str, name: str) -> Obj | None:
        """The claim, retried while the Node authorizer has not yet learnt that a pod bound here
        uses it (its graph follows the pod's status a moment behind, as a kubelet's retries do)."""
        for delay in _RETRY_SECONDS:
            try:
                return await self.api.find("ResourceClaim", namespace, name)
            except KubeApiError as error:
                if error.status != 403:
                    raise ClaimNotPrepared(
                        f"ResourceClaim {name} cannot be read: {error}"
                    ) from None
            await asyncio.sleep(delay)
        raise ClaimNotPrepared(f"ResourceClaim {name} is not readable by node {self.node}")

    async def _claim_names(self, pod: Obj) -> dict[str, str]:
        """Pod claim name → ResourceClaim name (a direct reference, or the generated claim)."""
        names = {
            str(c["name"]): str(c["resourceClaimName"])
            for c in (pod.get("spec") or {}).get("resourceClaims") or []
            if c.get("resourceClaimName")
        }
        statuses = (pod.get("status") or {}).get("resourceClaimStatuses")
        if statuses is None:  # the watched copy may predate the controller's status write
            meta = pod["metadata"]
            fresh = await self.api.find("Pod", meta["namespace"], meta["name"]) or {}
            statuses = (fresh.get("status") or {}).get("resourceClaimStatuses") or []
        for status in statuses:
            if status.get("resourceClaimName"):
                names[str(status["name"])] = str(status["resourceClaimName"])
        return names

    def _sharing(self, allocation: Mapping[str, Any]) -> Obj:
        """The sharing settings of this driver's opaque configuration in the allocation."""
        found: Obj = {}
        for entry in (allocation.get("devices") or {}).get("config") or []:
            opaque = entry.get("opaque") or {}
            if opaque.get("driver") == self.driver:
                found = dict((opaque.get("parameters") or {}).get("sharing") or {})
        return found
