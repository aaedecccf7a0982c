"""A DRA driver's pool, read from its ResourceSlices and the allocated ResourceClaims. Pure.

Each device of the driver's slices is one ``PoolGpu`` (node, ``<pool>/<device>``, product name,
``memory`` capacity); each claim's ``status.allocation.devices.results`` entry for the driver marks
its device used: by its ``consumedCapacity`` memory where the scheduler recorded one (consumable
capacity), else all of the device. Per node, a ``PoolResource`` counts the devices and how many are
allocated. Malformed entries are skipped: the pool is a view, not a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bf_jupyter.backends.base import Pool, PoolGpu, PoolResource, quantity_int

__all__ = ["read_dra_pool"]

_MIB = 1 << 20


def read_dra_pool(
    backend: str,
    driver: str,
    slices: Iterable[Mapping[str, Any]],
    claims: Iterable[Mapping[str, Any]] | None,
) -> Pool:
    """The devices ``driver`` publishes and what the claims hold of them (None: unknown)."""
    used = None if claims is None else _usage(driver, claims)
    gpus: list[PoolGpu] = []
    per_node: dict[str, list[int]] = {}
    for item in slices:
        spec = item.get("spec") or {}
        if spec.get("driver") != driver:
            continue
        pool = str((spec.get("pool") or {}).get("name") or "")
        node = str(spec.get("nodeName") or pool)
        for device in spec.get("devices") or []:
            name = str(device.get("name") or "")
            attributes = device.get("attributes") or {}
            memory = quantity_int(((device.get("capacity") or {}).get("memory") or {}).get("value"))
            memory_mib = memory // _MIB or None
            taken = None if used is None else used.get((pool, name))
            used_mib = None
            if taken is not None and memory_mib is not None:
                used_mib = min(memory_mib, taken[0] // _MIB if taken[0] else memory_mib)
            elif used is not None and memory_mib is not None:
                used_mib = 0
            gpus.append(
                PoolGpu(
                    node=node,
                    id=f"{pool}/{name}",
                    model=_text(attributes.get("productName")),
                    memory_mib=memory_mib,
                    used_memory_mib=used_mib,
                    tasks=0 if taken is None else taken[1],
                )
            )
            counts = per_node.setdefault(node, [0, 0])
            counts[0] += 1
            counts[1] += 0 if taken is None else 1
    resources = tuple(
        PoolResource(node, f"{driver} devices", total, None if used is None else allocated)
        for node, (total, allocated) in sorted(per_node.items())
    )
    warnings: tuple[str, ...] = ()
    if claims is None:
        warnings = ("ResourceClaims could not be read: devices are shown without their use",)
    if not gpus:
        warnings += (f"no ResourceSlice of driver {driver} could be read",)
    return Pool(backend, tuple(gpus), resources, warnings)


def _usage(driver: str, claims: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[int]]:
    """(pool, device) → [consumed memory bytes (0: the whole device), allocations]."""
    used: dict[tuple[str, str], list[int]] = {}
    for claim in claims:
        allocation = (claim.get("status") or {}).get("allocation") or {}
        for result in (allocation.get("devices") or {}).get("results") or []:
            if result.get("driver") != driver:
                continue
            key = (str(result.get("pool") or ""), str(result.get("device") or ""))
            memory = quantity_int((result.get("consumedCapacity") or {}).get("memory"))
            entry = used.setdefault(key, [0, 0])
            entry[0] += memory
            entry[1] += 1
    return used


def _text(attribute: object) -> str:
    if isinstance(attribute, Mapping):
        for kind in ("string", "version", "int", "bool"):
            if kind in attribute:
                return str(attribute[kind])
    return ""
