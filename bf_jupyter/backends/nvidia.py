"""NVIDIA's device plugin: whole GPUs, MIG partitions (mixed strategy) and shared replicas.

Followed: NVIDIA/k8s-device-plugin v0.20.0 (README: "Shared Access to GPUs" with time-slicing
and MPS, ``renameByDefault``, ``failRequestsGreaterThanOne``; docs/gpu-feature-discovery: the
``nvidia.com/gpu.product``, ``nvidia.com/gpu.memory``, ``nvidia.com/gpu.count``,
``nvidia.com/gpu.sharing-strategy`` and ``nvidia.com/mig.strategy`` labels).

- Whole GPUs: ``nvidia.com/gpu: N``.
- MIG, mixed strategy: each profile is its own resource, ``nvidia.com/mig-<g>g.<mem>gb``. A slice
  ``mig-1g.10gb`` names one; a memory slice ``1x10Gi`` takes the smallest profile the cluster
  offers whose name promises at least that memory (``10gb`` read as 10 GiB).
- Shared replicas (time-slicing or MPS): ``nvidia.com/gpu: 1``, or ``nvidia.com/gpu.shared: 1``
  when the plugin runs with ``renameByDefault: true``. More than one replica buys no more GPU, so
  a slice asks for exactly one (``1xshared``).
- Quota: the API server charges extended resources as ``requests.<resource>``.
- Filters: ``device.name=X`` becomes the node selector ``nvidia.com/gpu.product: X`` (GFD's exact
  product label, e.g. ``Tesla-T4``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from bf_jupyter.backends.base import (
    FORM_FILTERS,
    FORM_MEMORY,
    FORM_MIG,
    FORM_SHARED,
    FORM_WHOLE,
    NO_OFFER,
    Charge,
    GpuBackend,
    Isolation,
    Json,
    Offer,
    Pool,
    PoolGpu,
    Rendering,
    SliceForm,
    node_name,
    node_resources,
    quantity_int,
)
from bf_jupyter.backends.refusals import alternatives, refuse, refuse_unless
from bf_jupyter.quantity import format_bytes
from bf_jupyter.slice import GpuSlice

__all__ = ["NvidiaBackend", "Sharing", "mig_profile_for"]

Sharing = Literal["none", "time-slicing", "mps"]
RESOURCE_GPU = "nvidia.com/gpu"
RESOURCE_SHARED = "nvidia.com/gpu.shared"
MIG_PREFIX = "nvidia.com/mig-"
LABEL_PRODUCT = "nvidia.com/gpu.product"
LABEL_MEMORY = "nvidia.com/gpu.memory"
LABEL_COUNT = "nvidia.com/gpu.count"
LABEL_SHARING = "nvidia.com/gpu.sharing-strategy"
_GIB = 1 << 30

EXCLUSIVE = Isolation(
    "whole GPU",
    "The container has the GPU to itself: all its memory and compute.",
)
MIG = Isolation(
    "hardware partition",
    "A MIG instance: memory, cache and compute units partitioned in hardware, with fault isolation.",
)
_SHARED_ISOLATION: dict[Sharing, Isolation] = {
    "time-slicing": Isolation(
        "no isolation",
        "Time-slicing interleaves every replica on the whole GPU: no memory limit, no fault "
        "isolation; one tenant can use all the memory.",
    ),
    "mps": Isolation(
        "memory cap and thread share",
        "MPS caps each replica's memory and active threads at an equal fraction of the GPU; "
        "clients share one MPS server, so faults are not isolated.",
    ),
}
_TITLES: dict[Sharing, str] = {
    "none": "NVIDIA device plugin",
    "time-slicing": "NVIDIA time-slicing",
    "mps": "NVIDIA MPS",
}


class NvidiaBackend(GpuBackend):
    """The device plugin with ``sharing`` on the GPU nodes (none, time-slicing or MPS)."""

    def __init__(self, sharing: Sharing = "none", *, rename_shared: bool = False) -> None:
        self.sharing: Sharing = sharing
        self.rename_shared = rename_shared
        self.name = "nvidia" if sharing == "none" else f"nvidia-{sharing}"
        self.title = _TITLES[sharing]
        forms: set[SliceForm] = {FORM_MIG, FORM_MEMORY, FORM_FILTERS}
        # Without a rename, nvidia.com/gpu on a sharing node is a replica, not a whole GPU.
        if sharing == "none" or rename_shared:
            forms.add(FORM_WHOLE)
        if sharing != "none":
            forms.add(FORM_SHARED)
        self.forms = frozenset(forms)
        self.isolation = EXCLUSIVE if sharing == "none" else _SHARED_ISOLATION[sharing]

    @property
    def shared_resource(self) -> str:
        return RESOURCE_SHARED if self.rename_shared else RESOURCE_GPU

    def render(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> Rendering:
        resource = self._resource(gpu_slice, offer)
        return Rendering(
            limits={resource: str(gpu_slice.amount)}, node_selector=self._selector(gpu_slice)
        )

    def resolve(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> GpuSlice:
        """A memory slice becomes the MIG profile it takes on ``offer``; others stay as they are."""
        resource = self._resource(gpu_slice, offer)
        self._selector(gpu_slice)
        if gpu_slice.kind != "memory":
            return gpu_slice
        profile = resource.removeprefix("nvidia.com/")
        return GpuSlice(gpu_slice.amount, filters=gpu_slice.filters, mig_profile=profile)

    def price(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> tuple[Charge, ...]:
        resource = self._resource(gpu_slice, offer)
        self._selector(gpu_slice)  # refuse exactly what render refuses
        unit = "MIG devices" if resource.startswith(MIG_PREFIX) else "devices"
        return (Charge(resource, gpu_slice.amount, unit, (f"requests.{resource}",)),)

    def _selector(self, gpu_slice: GpuSlice) -> dict[str, str]:
        selector: dict[str, str] = {}
        for term in gpu_slice.filters:
            if term.key != "device.name" or term.negated or LABEL_PRODUCT in selector:
                raise refuse(
                    "filter",
                    str(term),
                    f"cannot be honoured by {self.title}",
                    f"use one device.name=PRODUCT, matched exactly against {LABEL_PRODUCT}",
                )
            selector[LABEL_PRODUCT] = term.value
        return selector

    def quota_keys(self) -> tuple[str, ...]:
        keys = [f"requests.{RESOURCE_GPU}", f"requests.{MIG_PREFIX}<g>g.<mem>gb"]
        if self.sharing != "none" and self.rename_shared:
            keys.append(f"requests.{RESOURCE_SHARED}")
        return tuple(keys)

    def isolation_of(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> Isolation:
        resource = self._resource(gpu_slice, offer)
        if resource.startswith(MIG_PREFIX):
            return MIG
        return self.isolation if gpu_slice.shared else EXCLUSIVE

    def read_pool(self, nodes: Iterable[Json], pods: Iterable[Json] | None) -> Pool:
        node_list = list(nodes)
        resources = tuple(
            r
            for r in node_resources(node_list, pods, prefix="nvidia.com/")
            if r.resource in (RESOURCE_GPU, RESOURCE_SHARED) or r.resource.startswith(MIG_PREFIX)
        )
        gpus = []
        for node in node_list:
            labels = (node.get("metadata") or {}).get("labels") or {}
            count = quantity_int(labels.get(LABEL_COUNT))
            memory = quantity_int(labels.get(LABEL_MEMORY)) or None
            product = str(labels.get(LABEL_PRODUCT) or "")
            gpus += [
                PoolGpu(node_name(node), f"{node_name(node)}/{i}", product, memory)
                for i in range(count)
            ]
        return Pool(self.name, tuple(gpus), resources)

    # ----- the one decision: which resource a slice takes ---------------------------------------

    def _resource(self, gpu_slice: GpuSlice, offer: Offer) -> str:
        refuse_unless(self, gpu_slice)
        kind = gpu_slice.kind
        if kind == "mig":
            return "nvidia.com/" + (gpu_slice.mig_profile or "")
        if kind == "memory":
            return "nvidia.com/" + self._mig_for_memory(gpu_slice, offer)
        if kind == "shared":
            if gpu_slice.amount != 1:
                raise refuse(
                    "gpu-amount",
                    str(gpu_slice.amount),
                    "shared replicas buy no more GPU than one (every replica shares the same GPU)",
                    "ask for one shared replica, 1xshared",
                )
            return self.shared_resource
        return RESOURCE_GPU

    def _mig_for_memory(self, gpu_slice: GpuSlice, offer: Offer) -> str:
        memory = gpu_slice.memory_bytes or 0
        profile = mig_profile_for(memory, offer.mig_profiles)
        if profile is None:
            offered = ", ".join(offer.mig_profiles) or "none"
            raise refuse(
                "gpu-memory",
                format_bytes(memory),
                f"fits no MIG profile the cluster offers (offered: {offered})",
                alternatives(self),
            )
        return profile


def mig_profile_for(memory_bytes: int, profiles: Iterable[str]) -> str | None:
    """The smallest offered MIG profile whose name promises at least ``memory_bytes`` (GB read as
    GiB), fewest compute slices first; None when none holds it."""
    candidates = []
    for profile in profiles:
        probe = GpuSlice(1, mig_profile=profile)
        gb = probe.mig_memory_gb or 0
        slices = int(profile.removeprefix("mig-").split("g", 1)[0])
        if gb * _GIB >= memory_bytes:
            candidates.append((gb, slices, profile.endswith("+me"), profile))
    return min(candidates)[3] if candidates else None
