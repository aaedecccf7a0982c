"""The server's per-GPU-backend views: which backends it offers, their pools, quotas and prices.

Pure functions over Node, Pod and ResourceQuota dicts (the I/O stays in ``pool`` / ``quota`` /
``service``): ``offered`` picks the backends (configured, else discovered from the nodes),
``pools_json`` reads every offered backend's pool from one listing, ``quotas_json`` finds each
backend's keys in the namespace's ResourceQuotas, and ``price_json`` prices a slice on one backend
against them (or says, in one sentence, why that backend cannot honour it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bf_jupyter.backends import GpuBackend, Offer, SliceRefused, discover, get_backend
from bf_jupyter.backends.dra import QUOTA_SUFFIX, DraBackend
from bf_jupyter.backends.registry import discover_dra
from bf_jupyter.quantity import QuantityError, parse_quantity

if TYPE_CHECKING:
    from bf_jupyter.slice import GpuSlice

__all__ = [
    "gpu_quotas_text",
    "offer_from_pool",
    "offered",
    "pools_json",
    "price_json",
    "quotas_json",
]

Json = dict[str, Any]
DRA_QUOTA_NOTE = (
    "DRA quota counts devices, not memory: a 1x8Gi claim costs one whole device of its class"
)


def offered(
    configured: Sequence[str],
    nodes: Iterable[Mapping[str, Any]] | None,
    slices: Iterable[Mapping[str, Any]] = (),
) -> list[str]:
    """The configured backends; else those the nodes (and DRA ResourceSlices) offer; else
    ``bitfusion`` (today's default, and the local backend's only one)."""
    if configured:
        return [get_backend(name).name for name in configured]
    found = discover(nodes) if nodes is not None else []
    found += [name for name in discover_dra(slices) if name not in found]
    return found or ["bitfusion"]


def pools_json(
    names: Sequence[str],
    nodes: Sequence[Json],
    pods: Sequence[Json] | None,
    *,
    slices: Sequence[Json] = (),
    claims: Sequence[Json] | None = None,
) -> dict[str, Json]:
    """Each backend's pool (``Pool.to_json``) from one listing of nodes and unfinished pods; a
    DRA backend's from the ResourceSlices and ResourceClaims (None: claims unreadable)."""
    pools = {}
    for name in names:
        backend = get_backend(name)
        if isinstance(backend, DraBackend):
            pools[name] = backend.read_devices(slices, claims).to_json()
        else:
            pools[name] = backend.read_pool(nodes, pods).to_json()
    return pools


def quotas_json(names: Sequence[str], quotas: Iterable[Mapping[str, Any]]) -> dict[str, list[Json]]:
    """Per backend, every ResourceQuota entry on one of its keys: ``key``, ``hard``, ``used``,
    ``remaining`` and ``source`` (the tightest first). An empty list: no quota limits it."""
    entries: list[Json] = []
    for item in quotas:
        status = item.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used") or {}
        source = f"ResourceQuota {(item.get('metadata') or {}).get('name', '')}"
        for key, value in hard.items():
            limit, spent = _number(value), _number(used.get(key, 0))
            if limit is None:
                continue
            spent = spent or 0
            remaining = max(0, limit - spent)
            entry = {
                "key": key,
                "hard": limit,
                "used": spent,
                "remaining": remaining,
                "source": source,
            }
            if key.endswith(QUOTA_SUFFIX):
                entry["note"] = DRA_QUOTA_NOTE
            entries.append(entry)
    result: dict[str, list[Json]] = {}
    for name in names:
        keys = set(get_backend(name).quota_keys())
        dra = isinstance(get_backend(name), DraBackend)  # any DeviceClass may be configured
        mine = [
            e
            for e in entries
            if e["key"] in keys
            or _is_mig_key(e["key"], keys)
            or (dra and e["key"].endswith(QUOTA_SUFFIX))
        ]
        result[name] = sorted(mine, key=lambda e: (e["key"], e["remaining"]))
    return result


def gpu_quotas_text(gpu_quotas: Mapping[str, Sequence[Json]]) -> str | None:
    """The other backends' quota entries in one sentence (None when there are none), e.g.
    ``gpu.nvidia.com.deviceclass.resource.k8s.io/devices: 0 of 1 remain (ResourceQuota q);
    DRA quota counts devices, not memory: ….``"""
    seen: dict[str, Json] = {}
    for entries in gpu_quotas.values():
        for entry in entries:
            seen.setdefault(f"{entry['key']} {entry['source']}", entry)
    if not seen:
        return None
    parts = [
        f"{e['key']}: {e['remaining']} of {e['hard']} remain ({e['source']})" for e in seen.values()
    ]
    notes = sorted({str(e["note"]) for e in seen.values() if e.get("note")})
    return "; ".join(parts + notes) + "."


def price_json(
    backend: GpuBackend, gpu_slice: GpuSlice, quotas: Sequence[Json], offer: Offer
) -> Json:
    """What ``gpu_slice`` costs on ``backend`` and whether the quota entries leave room; a slice
    the backend cannot honour is ``fits: false`` with the refusal as ``reason`` (field named).
    Raises ``SliceError`` only for a slice that cannot be priced at all."""
    base: Json = {
        "backend": backend.name,
        "slice": gpu_slice.to_text(),
        "description": gpu_slice.describe(),
    }
    try:
        charges = backend.price(gpu_slice, offer)
        isolation = backend.isolation_of(gpu_slice, offer)
    except SliceRefused as refused:
        return base | {
            "charges": [],
            "isolation": None,
            "fits": False,
            "reason": str(refused),
            "field": "slice",
        }
    for charge in charges:
        for entry in quotas:
            if entry["key"] in charge.quota_keys and charge.amount > entry["remaining"]:
                reason = (
                    f"{gpu_slice.describe()} costs {charge.amount} {charge.unit} of "
                    f"{charge.resource} but only {entry['remaining']} of {entry['hard']} remain "
                    f"({entry['source']} on {entry['key']})"
                )
                if entry.get("note"):
                    reason += f"; {entry['note']}"
                return base | {
                    "charges": [c.to_json() for c in charges],
                    "isolation": isolation.to_json(),
                    "fits": False,
                    "reason": reason,
                    "field": "slice",
                }
    return base | {
        "charges": [c.to_json() for c in charges],
        "isolation": isolation.to_json(),
        "fits": True,
        "reason": None,
        "field": None,
    }


def _is_mig_key(key: str, keys: set[str]) -> bool:
    """``requests.nvidia.com/mig-1g.10gb`` belongs to a backend listing the MIG key pattern."""
    return key.startswith("requests.nvidia.com/mig-") and any("mig-<g>g" in k for k in keys)


def _number(value: object) -> int | None:
    try:
        return int(parse_quantity(str(value)))
    except (QuantityError, ValueError):
        return None


def offer_from_pool(pool: Mapping[str, Any] | None, name: str, per_gpu_memory: int | None) -> Offer:
    """What ``name``'s pool in a ``GET pool`` reading offers: the MIG profiles some node advertises
    and the smallest GPU memory (unless ``per_gpu_memory`` is configured)."""
    mine = ((pool or {}).get("gpu_pools") or {}).get(name) or {}
    profiles = sorted(
        {
            str(r["resource"]).removeprefix("nvidia.com/")
            for r in mine.get("resources") or []
            if str(r.get("resource", "")).startswith("nvidia.com/mig-") and r.get("allocatable")
        }
    )
    sizes = [int(g["memory_mib"]) for g in mine.get("gpus") or [] if g.get("memory_mib")]
    memory = per_gpu_memory if per_gpu_memory is not None else (min(sizes) << 20 if sizes else None)
    if memory is None and (pool or {}).get("gpu_memory_mib"):
        memory = int((pool or {})["gpu_memory_mib"]) << 20
    return Offer(per_gpu_memory_bytes=memory, mig_profiles=tuple(profiles))
