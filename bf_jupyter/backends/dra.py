"""Kubernetes Dynamic Resource Allocation (``resource.k8s.io/v1``): a slice is a claim the real
kube-scheduler allocates from the devices a DRA driver publishes in ResourceSlices.

Followed: Kubernetes v1.37 ``k8s.io/api/resource/v1`` (``ExactDeviceRequest``, ``DeviceSelector``
CEL, ``CapacityRequirements`` and ``DistinctAttribute`` of consumable capacity, beta and on by
default since 1.36), ``pkg/quota/v1/evaluator/core/resource_claims.go`` (quota
``<class>.deviceclass.resource.k8s.io/devices``) and NVIDIA's k8s-dra-driver-gpu (device classes
``gpu.nvidia.com`` and ``mig.nvidia.com``; attributes ``productName``, ``uuid``, ``index``,
``profile``; capacity ``memory``; opaque ``GpuConfig`` with ``sharing.strategy`` TimeSlicing or
MPS, ``mpsConfig.defaultActiveThreadPercentage`` and ``defaultPinnedDeviceMemoryLimit``).

- A slice becomes one ResourceClaimTemplate (created beside the kernel pod, owned by it), the pod's
  ``spec.resourceClaims`` entry naming it and the container's ``resources.claims``. Its one request
  ``gpu`` asks ``exactly`` for ``count`` devices of the device class (``gpu.nvidia.com``, or
  ``mig.nvidia.com`` with a ``profile`` selector for a MIG slice).
- Filters become CEL selectors on the driver's attributes: ``device.name`` → ``productName``,
  ``device.uuid`` → ``uuid`` (``!=`` negates).
- Fractions (``1x50%``, ``2x8Gi``, ``cores=30``) carry the driver's opaque MPS configuration (thread
  and memory share), which the driver enforces in the container. Without consumable capacity each
  device is the claim's alone in the scheduler's accounting (a memory slice also selects devices
  with at least that memory); with ``consumable_capacity`` (the driver publishes
  ``allowMultipleAllocations`` devices with a ``memory`` capacity) a fraction is a
  ``capacity.requests.memory`` on a shared device, so the scheduler never overcommits its memory.
- ``1xshared`` is one device with the driver's TimeSlicing configuration.
- Quota: the API server charges ResourceClaims per device class in devices, never in memory.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from bf_jupyter.backends.base import (
    FORM_CORES,
    FORM_FILTERS,
    FORM_MEMORY,
    FORM_MIG,
    FORM_PERCENT,
    FORM_SHARED,
    FORM_WHOLE,
    NO_OFFER,
    Charge,
    GpuBackend,
    Isolation,
    Json,
    Offer,
    Pool,
    Rendering,
    SliceForm,
)
from bf_jupyter.backends.dra_pool import read_dra_pool
from bf_jupyter.backends.refusals import refuse, refuse_unless
from bf_jupyter.quantity import format_bytes
from bf_jupyter.slice import GpuSlice

__all__ = [
    "API_VERSION",
    "CLAIM_NAME",
    "DEFAULT_DEVICE_CLASS",
    "DEFAULT_DRIVER",
    "DEFAULT_MIG_DEVICE_CLASS",
    "QUOTA_SUFFIX",
    "REQUEST_NAME",
    "TEMPLATE_NAME",
    "DraBackend",
    "quota_key",
]

API_VERSION = "resource.k8s.io/v1"
DEFAULT_DRIVER = "gpu.nvidia.com"
DEFAULT_DEVICE_CLASS = "gpu.nvidia.com"
DEFAULT_MIG_DEVICE_CLASS = "mig.nvidia.com"
QUOTA_SUFFIX = ".deviceclass.resource.k8s.io/devices"
CLAIM_NAME = "gpu"  # the pod's claim and the container's reference to it
REQUEST_NAME = "gpu"  # the claim's one device request
TEMPLATE_NAME = "bf-gpu-slice"  # renamed to the kernel pod's name by the pod builder
_CONFIG_API = "resource.nvidia.com/v1beta1"
_ENFORCED_BY_QUOTA = (
    "the Kubernetes API server (ResourceQuota on ResourceClaims: it counts devices, not memory)"
)

WHOLE = Isolation(
    "whole GPU",
    "The scheduler allocates the device to this claim alone and the driver prepares only it.",
)
MIG = Isolation(
    "hardware partition",
    "A MIG device: memory, cache and compute units partitioned in hardware, with fault isolation.",
)
CAPPED = Isolation(
    "device to itself, capped by MPS",
    "The scheduler allocates whole devices to this claim; the driver's MPS caps its memory and "
    "threads at the slice's share, and the rest of each device stays idle.",
)
CONSUMED = Isolation(
    "memory accounted by the scheduler, capped by MPS",
    "The scheduler counts the slice's memory against each device's published capacity, so slices "
    "never overcommit it; the driver's MPS caps memory and threads; faults are not isolated.",
)
TIME_SLICED = Isolation(
    "no isolation",
    "Time-slicing interleaves this claim's work on the whole GPU: no memory limit, no fault "
    "isolation.",
)


def quota_key(device_class: str) -> str:
    """The ResourceQuota key that counts a device class's devices in ResourceClaims."""
    return device_class + QUOTA_SUFFIX


class DraBackend(GpuBackend):
    """Claims on a DRA driver's devices; ``consumable_capacity`` when the driver publishes shared
    devices whose ``memory`` capacity the scheduler accounts per claim."""

    def __init__(
        self,
        *,
        device_class: str = DEFAULT_DEVICE_CLASS,
        mig_device_class: str = DEFAULT_MIG_DEVICE_CLASS,
        driver: str = DEFAULT_DRIVER,
        consumable_capacity: bool = False,
    ) -> None:
        self.device_class = device_class
        self.mig_device_class = mig_device_class
        self.driver = driver
        self.consumable_capacity = consumable_capacity
        self.name = "dra-consumable-capacity" if consumable_capacity else "dra"
        self.title = "Kubernetes DRA" + (" (consumable capacity)" if consumable_capacity else "")
        forms: set[SliceForm] = {
            FORM_WHOLE,
            FORM_PERCENT,
            FORM_MEMORY,
            FORM_CORES,
            FORM_MIG,
            FORM_FILTERS,
        }
        if not consumable_capacity:  # a shared device's claim without a capacity takes all of it
            forms.add(FORM_SHARED)
        self.forms = frozenset(forms)
        self.isolation = WHOLE

    def with_device_class(self, device_class: str) -> DraBackend:
        """The same backend on another device class (an operator's own DeviceClass)."""
        clone = copy.copy(self)
        clone.device_class = device_class.strip() or DEFAULT_DEVICE_CLASS
        return clone

    # ----- rendering -----------------------------------------------------------------------------

    def render(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> Rendering:
        template = {
            "apiVersion": API_VERSION,
            "kind": "ResourceClaimTemplate",
            "metadata": {"name": TEMPLATE_NAME},
            "spec": {"spec": {"devices": self.devices(gpu_slice, offer)}},
        }
        return Rendering(
            pod_claims=({"name": CLAIM_NAME, "resourceClaimTemplateName": TEMPLATE_NAME},),
            container_claims=({"name": CLAIM_NAME},),
            objects=(template,),
        )

    def devices(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> Json:
        """The claim's ``spec.devices``: one request, its constraints and the driver's config.
        Raises ``SliceRefused``."""
        refuse_unless(self, gpu_slice)
        mig = gpu_slice.kind == "mig"
        exactly: Json = {
            "deviceClassName": self.mig_device_class if mig else self.device_class,
            "allocationMode": "ExactCount",
            "count": self._count(gpu_slice),
        }
        selectors = self._selectors(gpu_slice)
        memory = self._memory_bytes(gpu_slice, offer)
        if memory is not None and self.consumable_capacity:
            exactly["capacity"] = {"requests": {"memory": format_bytes(memory)}}
        elif memory is not None and gpu_slice.kind == "memory":
            selectors.append(self._at_least_memory(memory))
        if selectors:
            exactly["selectors"] = [{"cel": {"expression": e}} for e in selectors]
        devices: Json = {"requests": [{"name": REQUEST_NAME, "exactly": exactly}]}
        if self.consumable_capacity and gpu_slice.amount > 1:
            # Two allocations of one shared device would satisfy a count of two.
            devices["constraints"] = [
                {"requests": [REQUEST_NAME], "distinctAttribute": f"{self.driver}/uuid"}
            ]
        sharing = self._sharing(gpu_slice, memory)
        if sharing is not None:
            parameters = {"apiVersion": _CONFIG_API, "kind": "GpuConfig", "sharing": sharing}
            devices["config"] = [
                {
                    "requests": [REQUEST_NAME],
                    "opaque": {"driver": self.driver, "parameters": parameters},
                }
            ]
        return devices

    def resolve(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> GpuSlice:
        """With consumable capacity, a percent slice becomes the memory it takes on ``offer`` (its
        thread share kept as ``cores``), so a provisioner that does not know the GPUs' memory
        renders the same claim; others stay as they are."""
        self.check(gpu_slice, offer)
        if not self.consumable_capacity or gpu_slice.kind != "percent" or gpu_slice.is_whole:
            return gpu_slice
        memory = self._memory_bytes(gpu_slice, offer)
        if memory is None:
            return gpu_slice
        cores = gpu_slice.cores if gpu_slice.cores is not None else gpu_slice.percent
        return GpuSlice(
            gpu_slice.amount, memory_bytes=memory, filters=gpu_slice.filters, cores=cores
        )

    def describe_request(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> str:
        """The claim's request in words, for a refusal: ``request gpu: 2 × gpu.nvidia.com with
        8Gi of memory each where <CEL>``. Raises ``SliceRefused``."""
        exactly = self.devices(gpu_slice, offer)["requests"][0]["exactly"]
        words = f"request {REQUEST_NAME}: {exactly['count']} × {exactly['deviceClassName']}"
        memory = ((exactly.get("capacity") or {}).get("requests") or {}).get("memory")
        if memory:
            words += f" with {memory} of memory each"
        selectors = [s["cel"]["expression"] for s in exactly.get("selectors") or []]
        if selectors:
            words += " where " + " && ".join(selectors)
        return words

    def _count(self, gpu_slice: GpuSlice) -> int:
        if gpu_slice.shared and gpu_slice.amount != 1:
            raise refuse(
                "gpu-amount",
                str(gpu_slice.amount),
                "time-sliced devices buy no more GPU than one (every tenant shares it)",
                "ask for one shared device, 1xshared",
            )
        return gpu_slice.amount

    def _attribute(self, name: str) -> str:
        return f"device.attributes[{json.dumps(self.driver)}].{name}"

    def _at_least_memory(self, memory: int) -> str:
        quantity = json.dumps(format_bytes(memory))
        return f"device.capacity[{json.dumps(self.driver)}].memory.compareTo(quantity({quantity})) >= 0"

    def _selectors(self, gpu_slice: GpuSlice) -> list[str]:
        expressions = []
        if gpu_slice.mig_profile is not None:
            profile = gpu_slice.mig_profile.removeprefix("mig-")
            expressions.append(f"{self._attribute('profile')} == {json.dumps(profile)}")
        attributes = {"device.name": "productName", "device.uuid": "uuid"}
        for term in gpu_slice.filters:
            attribute = attributes.get(term.key)
            if attribute is None:
                raise refuse(
                    "filter",
                    str(term),
                    f"cannot be honoured by {self.title}",
                    "filter by product name or UUID: device.name=PRODUCT, device.uuid=GPU-…",
                )
            operator = "!=" if term.negated else "=="
            expressions.append(f"{self._attribute(attribute)} {operator} {json.dumps(term.value)}")
        return expressions

    def _memory_bytes(self, gpu_slice: GpuSlice, offer: Offer) -> int | None:
        """Memory per device: the slice's own, or its percent of the known per-GPU memory; None
        for whole, MIG and shared slices, and for a percent of an unknown memory."""
        if gpu_slice.memory_bytes is not None:
            return gpu_slice.memory_bytes
        if gpu_slice.kind != "percent" or gpu_slice.is_whole:
            return None
        if offer.per_gpu_memory_bytes is None or gpu_slice.percent is None:
            if self.consumable_capacity and gpu_slice.percent != 100:
                raise refuse(
                    "gpu-percent",
                    f"{gpu_slice.percent}%",
                    "cannot become a memory capacity: the memory of one GPU is not known",
                    "ask for a memory share such as 1x8Gi, or configure the per-GPU memory",
                )
            return None
        whole_mib = Fraction(offer.per_gpu_memory_bytes, 1 << 20)
        return math.ceil(whole_mib * gpu_slice.percent / 100) << 20

    def _sharing(self, gpu_slice: GpuSlice, memory: int | None) -> Json | None:
        """The driver's sharing settings for a fraction (MPS) or a shared device (TimeSlicing)."""
        if gpu_slice.shared:
            return {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Default"}}
        if gpu_slice.kind == "mig" or gpu_slice.is_whole:
            return None
        mps: Json = {}
        threads = gpu_slice.cores if gpu_slice.cores is not None else gpu_slice.percent
        if threads is not None and threads < 100:
            mps["defaultActiveThreadPercentage"] = threads
        if memory is not None:
            mps["defaultPinnedDeviceMemoryLimit"] = format_bytes(memory)
        return {"strategy": "MPS", "mpsConfig": mps}

    # ----- price, pool, isolation ----------------------------------------------------------------

    def price(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> tuple[Charge, ...]:
        devices = self.devices(gpu_slice, offer)
        exactly = devices["requests"][0]["exactly"]
        device_class = str(exactly["deviceClassName"])
        unit = "MIG devices" if device_class == self.mig_device_class else "devices"
        return (
            Charge(
                device_class,
                int(exactly["count"]),
                unit,
                (quota_key(device_class),),
                _ENFORCED_BY_QUOTA,
            ),
        )

    def quota_keys(self) -> tuple[str, ...]:
        return (quota_key(self.device_class), quota_key(self.mig_device_class))

    def isolation_of(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> Isolation:
        self.devices(gpu_slice, offer)
        if gpu_slice.kind == "mig":
            return MIG
        if gpu_slice.shared:
            return TIME_SLICED
        if gpu_slice.is_whole:
            return WHOLE
        return CONSUMED if self.consumable_capacity else CAPPED

    def read_pool(self, nodes: Iterable[Json], pods: Iterable[Json] | None) -> Pool:
        """Nodes carry no DRA devices: see ``read_devices``."""
        return Pool(self.name, warnings=("DRA devices are read from ResourceSlices",))

    def read_devices(
        self, slices: Iterable[Mapping[str, Any]], claims: Iterable[Mapping[str, Any]] | None
    ) -> Pool:
        """The pool from the driver's ResourceSlices and the allocated ResourceClaims (None:
        the claims could not be read)."""
        return read_dra_pool(self.name, self.driver, slices, claims)
