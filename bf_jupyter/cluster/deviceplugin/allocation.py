"""Which units a container should get, and what it is told about them.

All GPUs of one ``bitfusion run`` come from one server, and a slice is N GPUs × a share of each,
so the preferred allocation packs units onto the fewest GPUs of one server: a 50-unit request fills
a half-used GPU (best fit) rather than breaking a whole one, and a 150-unit request takes one whole
GPU plus half of another on the same server. Pure: no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from bf_jupyter.cluster.deviceplugin.inventory import UnitId
from bf_jupyter.contract import ALLOCATED_SHARES_ENV, ALLOCATED_UNITS_ENV

__all__ = ["allocation_envs", "preferred_allocation"]

GpuKey = tuple[int, int]


def preferred_allocation(
    *, available: Sequence[str], must_include: Sequence[str], size: int
) -> list[str]:
    """``size`` IDs from ``available`` (plus all of ``must_include``), packed on the fewest GPUs.

    Order of preference: GPUs that already hold a must-include unit, then GPUs of one server (the
    server that needs the fewest GPUs, then the fullest fit), and only then other servers. IDs this
    plugin did not make are used last. Never raises; when ``available`` is too small the answer is
    shorter than ``size`` and the kubelet falls back to its own choice.
    """
    chosen = list(dict.fromkeys(must_include))
    taken = set(chosen)
    free: dict[GpuKey, list[str]] = defaultdict(list)
    foreign: list[str] = []
    for device_id in dict.fromkeys(available):
        if device_id in taken:
            continue
        unit = UnitId.try_parse(device_id)
        if unit is None:
            foreign.append(device_id)
        else:
            free[unit.gpu_key].append(device_id)
    for ids in free.values():
        ids.sort(key=UnitId.parse)

    def take(gpu: GpuKey) -> None:  # as many of its units as still needed; the rest is not needed
        chosen.extend(free.pop(gpu)[: size - len(chosen)])

    touched = sorted({u.gpu_key for u in map(UnitId.try_parse, chosen) if u is not None})
    for key in touched:
        if key in free and len(chosen) < size:
            take(key)
    for server in _server_order(free, size - len(chosen), first={s for s, _ in touched}):
        while len(chosen) < size and (gpu := _next_gpu(free, server, size - len(chosen))):
            take(gpu)
    chosen.extend(foreign[: max(0, size - len(chosen))])
    return chosen


def allocation_envs(device_ids: Iterable[str]) -> dict[str, str]:
    """What a container learns from Allocate: its unit count and their GPUs, never a secret.

    ``{"BF_JUPYTER_GPU_UNITS": "150", "BF_JUPYTER_GPU_SHARES": "s0-g0:100,s0-g1:50"}``. Raises
    ``ValueError`` for an ID this plugin did not make.
    """
    per_gpu: dict[GpuKey, int] = defaultdict(int)
    units = 0
    for device_id in dict.fromkeys(device_ids):
        per_gpu[UnitId.parse(device_id).gpu_key] += 1
        units += 1
    shares = ",".join(f"s{server}-g{gpu}:{n}" for (server, gpu), n in sorted(per_gpu.items()))
    return {ALLOCATED_UNITS_ENV: str(units), ALLOCATED_SHARES_ENV: shares}


def _server_order(free: dict[GpuKey, list[str]], needed: int, *, first: set[int]) -> list[int]:
    """Servers to draw from: ``first``, then those that can hold ``needed`` alone (fewest GPUs,
    then least spare), then the rest, largest first."""
    totals: dict[int, list[int]] = defaultdict(list)
    for (server, _), ids in free.items():
        totals[server].append(len(ids))

    def rank(server: int) -> tuple[int, int, int, int]:
        sizes = sorted(totals[server], reverse=True)
        total = sum(sizes)
        if server in first:
            return (0, 0, 0, server)
        if total >= needed:
            gpus_needed = next(i + 1 for i in range(len(sizes)) if sum(sizes[: i + 1]) >= needed)
            return (1, gpus_needed, total, server)
        return (2, 0, -total, server)

    return sorted(totals, key=rank)


def _next_gpu(free: dict[GpuKey, list[str]], server: int, needed: int) -> GpuKey | None:
    """The GPU of ``server`` to draw from next: the smallest one that holds ``needed`` alone, else
    the one with the most free units. None when the server has nothing left."""
    candidates = [(len(ids), key) for key, ids in free.items() if key[0] == server and ids]
    if not candidates:
        return None
    fitting = [c for c in candidates if c[0] >= needed]
    if fitting:
        return min(fitting)[1]
    return max(candidates, key=lambda c: (c[0], -c[1][1]))[1]
