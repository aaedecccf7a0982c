"""HAMi: shared NVIDIA GPUs whose memory and compute are capped inside the container (HAMi-core).

Followed: HAMi v2.10.0 (``pkg/device/nvidia/device.go``, ``pkg/device/devices.go``,
``pkg/device/quota.go``, ``charts/hami/values.yaml``, ``examples/nvidia/``).

- A slice becomes ``nvidia.com/gpu`` (GPUs) with ``nvidia.com/gpumem`` (MiB per GPU) or
  ``nvidia.com/gpumem-percentage`` (percent of each GPU's memory), and ``nvidia.com/gpucores``
  (percent of each GPU's compute; 100 with 100 % memory = the GPU to itself), in ``limits``;
  the pod asks for HAMi's scheduler (``hami-scheduler``, the chart's default).
- Filters become HAMi's pod annotations, comma-separated lists: ``device.name=A100`` →
  ``nvidia.com/use-gputype`` (a case-insensitive substring of the card type), ``device.name!=``
  → ``nvidia.com/nouse-gputype``, ``device.uuid=`` / ``!=`` → ``nvidia.com/use-gpuuuid`` /
  ``nvidia.com/nouse-gpuuuid`` (exact UUIDs).
- Quota: HAMi's scheduler enforces ``limits.nvidia.com/gpumem`` (MiB) and
  ``limits.nvidia.com/gpucores`` from ResourceQuota objects; the GPU count is an extended
  resource the API server charges as ``requests.nvidia.com/gpu`` (``limits.nvidia.com/gpu`` is
  read too, as some clusters write it, but the API server does not charge it).
- Pool: the node annotation ``hami.io/node-nvidia-register`` (a JSON list of devices with
  ``id``, ``count``, ``devmem`` MiB, ``devcore``, ``type``, ``health``; older releases wrote
  ``id,count,devmem,devcore,type,numa,health[,index,mode]`` joined by ``:``) and each running
  pod's ``hami.io/vgpu-devices-allocated`` (``uuid,type,usedmem,usedcores`` joined by ``:`` per
  container, containers by ``;``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from bf_jupyter.backends.base import (
    FORM_CORES,
    FORM_FILTERS,
    FORM_MEMORY,
    FORM_PERCENT,
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
    node_name,
    node_resources,
)
from bf_jupyter.backends.refusals import refuse, refuse_unless
from bf_jupyter.quantity import MIB

if TYPE_CHECKING:
    from bf_jupyter.slice import GpuSlice

__all__ = [
    "ALLOCATED_ANNOTATION",
    "REGISTER_ANNOTATION",
    "HamiBackend",
    "parse_allocations",
    "parse_registration",
]

RESOURCE_GPU = "nvidia.com/gpu"
RESOURCE_MEMORY = "nvidia.com/gpumem"
RESOURCE_MEMORY_PERCENT = "nvidia.com/gpumem-percentage"
RESOURCE_CORES = "nvidia.com/gpucores"
USE_TYPE = "nvidia.com/use-gputype"
NOUSE_TYPE = "nvidia.com/nouse-gputype"
USE_UUID = "nvidia.com/use-gpuuuid"
NOUSE_UUID = "nvidia.com/nouse-gpuuuid"
REGISTER_ANNOTATION = "hami.io/node-nvidia-register"
ALLOCATED_ANNOTATION = "hami.io/vgpu-devices-allocated"
DEFAULT_SCHEDULER = "hami-scheduler"
_ENFORCED_BY_HAMI = "HAMi's scheduler (its quota manager), and HAMi-core in the container"
_FILTER_ANNOTATIONS = {
    ("device.name", False): USE_TYPE,
    ("device.name", True): NOUSE_TYPE,
    ("device.uuid", False): USE_UUID,
    ("device.uuid", True): NOUSE_UUID,
}


class HamiBackend(GpuBackend):
    name = "hami"
    title = "HAMi"
    forms = frozenset({FORM_WHOLE, FORM_PERCENT, FORM_MEMORY, FORM_CORES, FORM_FILTERS})
    isolation = Isolation(
        "memory and cores limited in the container",
        "HAMi-core inside the container caps the GPU memory it can allocate and throttles its "
        "share of compute; other tenants use the same GPU.",
    )

    def __init__(self, *, scheduler_name: str = DEFAULT_SCHEDULER) -> None:
        self.scheduler_name = scheduler_name

    def render(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> Rendering:
        refuse_unless(self, gpu_slice)
        limits = {RESOURCE_GPU: str(gpu_slice.amount)}
        if gpu_slice.memory_mib is not None:
            limits[RESOURCE_MEMORY] = str(gpu_slice.memory_mib)
        else:
            limits[RESOURCE_MEMORY_PERCENT] = str(gpu_slice.percent)
        cores = _cores_per_gpu(gpu_slice)
        if cores is not None:
            limits[RESOURCE_CORES] = str(cores)
        return Rendering(
            limits=limits,
            annotations=_filter_annotations(gpu_slice),
            scheduler_name=self.scheduler_name or None,
        )

    def price(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> tuple[Charge, ...]:
        refuse_unless(self, gpu_slice)
        charges = [
            Charge(
                RESOURCE_GPU,
                gpu_slice.amount,
                "GPUs",
                (f"requests.{RESOURCE_GPU}", f"limits.{RESOURCE_GPU}"),
            )
        ]
        memory = _memory_mib_per_gpu(gpu_slice, offer)
        if memory is not None:
            charges.append(
                Charge(
                    RESOURCE_MEMORY,
                    gpu_slice.amount * memory,
                    "MiB of GPU memory",
                    (f"limits.{RESOURCE_MEMORY}",),
                    _ENFORCED_BY_HAMI,
                )
            )
        cores = _cores_per_gpu(gpu_slice)
        if cores is not None:
            charges.append(
                Charge(
                    RESOURCE_CORES,
                    gpu_slice.amount * cores,
                    "percent of one GPU's compute",
                    (f"limits.{RESOURCE_CORES}",),
                    _ENFORCED_BY_HAMI,
                )
            )
        return tuple(charges)

    def quota_keys(self) -> tuple[str, ...]:
        return (
            f"requests.{RESOURCE_GPU}",
            f"limits.{RESOURCE_GPU}",
            f"limits.{RESOURCE_MEMORY}",
            f"limits.{RESOURCE_CORES}",
        )

    def read_pool(self, nodes: Iterable[Json], pods: Iterable[Json] | None) -> Pool:
        node_list = list(nodes)
        pod_list = None if pods is None else list(pods)
        used = _usage_by_uuid(pod_list or [])
        gpus: list[PoolGpu] = []
        warnings: list[str] = []
        for node in node_list:
            raw = ((node.get("metadata") or {}).get("annotations") or {}).get(REGISTER_ANNOTATION)
            if not raw:
                continue
            try:
                devices = parse_registration(raw)
            except ValueError as error:
                warnings.append(f"node {node_name(node)}: {REGISTER_ANNOTATION} {error}")
                continue
            for device in devices:
                memory, cores, tasks = used.get(device["id"], (0, 0, 0))
                known = pod_list is not None
                gpus.append(
                    PoolGpu(
                        node=node_name(node),
                        id=device["id"],
                        model=device["type"],
                        memory_mib=device["devmem"],
                        used_memory_mib=memory if known else None,
                        cores=device["devcore"],
                        used_cores=cores if known else None,
                        tasks=tasks,
                    )
                )
        resources = node_resources(node_list, pod_list, [RESOURCE_GPU])
        return Pool(self.name, tuple(gpus), resources, tuple(warnings))


def parse_registration(text: str) -> list[dict[str, Any]]:
    """The devices of ``hami.io/node-nvidia-register``: dicts with ``id``, ``count``, ``devmem``
    (MiB), ``devcore``, ``type`` and ``health``. Reads the JSON list of v2.10 and the older
    colon-separated form. Raises ValueError naming what is wrong."""
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"is not JSON ({error.msg})") from None
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            raise ValueError("is not a list of devices")
        return [_device(i) for i in items]
    devices = []
    for segment in filter(None, text.split(":")):
        parts = segment.split(",")
        if len(parts) not in (7, 9):
            raise ValueError(f"segment {segment!r} has {len(parts)} fields, not 7 or 9")
        devices.append(
            _device(
                {
                    "id": parts[0],
                    "count": parts[1],
                    "devmem": parts[2],
                    "devcore": parts[3],
                    "type": parts[4],
                    "health": parts[6].lower() == "true",
                }
            )
        )
    return devices


def parse_allocations(text: str) -> list[tuple[str, int, int]]:
    """``(uuid, used MiB, used cores)`` for each device in ``hami.io/vgpu-devices-allocated``
    (every container's). Malformed entries are skipped: the pool is a view, not a verdict."""
    found = []
    for container in text.split(";"):
        for entry in container.split(":"):
            parts = entry.split(",")
            if len(parts) < 4:
                continue
            try:
                found.append((parts[0], int(parts[2]), int(parts[3])))
            except ValueError:
                continue
    return found


def _device(item: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return {
            "id": str(item["id"]),
            "count": int(item.get("count") or 0),
            "devmem": int(item.get("devmem") or 0),
            "devcore": int(item.get("devcore") or 0),
            "type": str(item.get("type") or ""),
            "health": bool(item.get("health", False)),
        }
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"device {dict(item)!r} lacks an id or has non-numeric fields") from None


def _usage_by_uuid(pods: Iterable[Json]) -> dict[str, tuple[int, int, int]]:
    used: dict[str, tuple[int, int, int]] = {}
    for pod in pods:
        text = ((pod.get("metadata") or {}).get("annotations") or {}).get(ALLOCATED_ANNOTATION)
        if not text:
            continue
        for uuid, memory, cores in parse_allocations(text):
            m, c, t = used.get(uuid, (0, 0, 0))
            used[uuid] = (m + memory, c + cores, t + 1)
    return used


def _cores_per_gpu(gpu_slice: GpuSlice) -> int | None:
    """``cores=`` when given; 100 for whole GPUs (HAMi's exclusive use); else none asked."""
    if gpu_slice.cores is not None:
        return gpu_slice.cores
    return 100 if gpu_slice.is_whole else None


def _memory_mib_per_gpu(gpu_slice: GpuSlice, offer: Offer) -> int | None:
    """MiB per GPU: the slice's own, or its percent of the known per-GPU memory (None: unknown)."""
    if gpu_slice.memory_mib is not None:
        return gpu_slice.memory_mib
    if offer.per_gpu_memory_bytes is None or gpu_slice.percent is None:
        return None
    total = Fraction(offer.per_gpu_memory_bytes, MIB)
    return math.ceil(total * gpu_slice.percent / 100)


def _filter_annotations(gpu_slice: GpuSlice) -> dict[str, str]:
    lists: dict[str, list[str]] = {}
    for term in gpu_slice.filters:
        key = _FILTER_ANNOTATIONS.get((term.key, term.negated))
        if key is None:
            raise refuse(
                "filter",
                str(term),
                "cannot be honoured by HAMi",
                "filter by GPU type or UUID: device.name=A100, device.name!=T4, device.uuid=GPU-…",
            )
        if "," in term.value:
            raise refuse(
                "filter",
                str(term),
                "has a comma, which HAMi reads as a list separator",
                f"repeat the term instead, e.g. {term.key}=A100 {term.key}=V100",
            )
        lists.setdefault(key, []).append(term.value)
    return {key: ",".join(values) for key, values in lists.items()}
