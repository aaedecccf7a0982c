"""What ``list_gpus`` and ``smi`` print.

``list_gpus`` keeps the real client's shape, which ``bf_jupyter.bitfusion.records`` parses (a server
line, then GPU lines, then lease lines, which only the simulator prints); a virtual pool says
``simulated`` in a header line and in every server's address. ``smi`` is a table for people.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bf_jupyter.version import __version__

if TYPE_CHECKING:
    from bf_jupyter.bitfusion.sim.placement import Pool, Usage
    from bf_jupyter.bitfusion.sim.store import Lease

__all__ = ["holder_text", "render_list_gpus", "render_smi"]

_WIDTH = 80


def holder_text(lease: Lease) -> str:
    """``pid 4242 (python)``, or how a requested lease is released."""
    if lease.holder is None:
        return f"request_gpus (release with: bitfusion-sim release_gpus {lease.lease_id})"
    return f"pid {lease.holder.pid} ({lease.holder_name})"


def render_list_gpus(pool: Pool, leases: Iterable[Lease], used: Usage) -> str:
    """The pool in ``list_gpus`` shape, free memory after the leases."""
    leases = list(leases)
    lines = [_header(pool)]
    for server in pool.servers:
        own = [lease for lease in leases if lease.server == server.index]
        address = f"{server.address} (simulated)" if pool.simulated else server.address
        lines.append(f" - server {server.index} [{address}]: running {len(own)} tasks")
        for gpu in server.gpus:
            free = gpu.memory_mib - used.get((server.index, gpu.index), 0)
            lines.append(
                f"   |- GPU {gpu.index}: free memory {free} MiB / {gpu.memory_mib} MiB ({gpu.name})"
            )
        lines.extend(
            f"   |- lease {lease.lease_id}: {lease.slice_text} on GPUs "
            f"[{', '.join(str(g) for g in lease.gpus)}] held by {holder_text(lease)} since {lease.since}"
            for lease in own
        )
    lines.extend(_stale_lines(pool, leases))
    return "\n".join(lines) + "\n"


def render_smi(pool: Pool, leases: Iterable[Lease], used: Usage) -> str:
    """An nvidia-smi-like table per server, then the leases."""
    leases = list(leases)
    rule = "+" + "-" * (_WIDTH - 2) + "+"
    out: list[str] = []
    for server in pool.servers:
        kind = f"SIMULATED, {pool.source}" if pool.simulated else pool.source
        out += [
            rule,
            _row(f"bitfusion-sim {__version__}   server {server.index} [{server.address}]"),
        ]
        out += [
            _row(f"{kind}"),
            _row(
                f"CUDA {server.cuda_version or '-'}   driver {server.driver_version or '-'}   host {server.hostname}"
            ),
        ]
        out += [
            "|" + "=" * (_WIDTH - 2) + "|",
            _row(f"{'GPU':>3}  {'Name':<28} {'Leased / Total':>22}  {'Use':<10}  Leases"),
            "|" + "-" * (_WIDTH - 2) + "|",
        ]
        for gpu in server.gpus:
            leased = used.get((server.index, gpu.index), 0)
            ids = ",".join(
                str(lease.lease_id)
                for lease in leases
                if lease.server == server.index and gpu.index in lease.gpus
            )
            memory = f"{leased}MiB / {gpu.memory_mib}MiB"
            out.append(
                _row(
                    f"{gpu.index:>3}  {gpu.name[:28]:<28} {memory:>22}  {_bar(leased, gpu.memory_mib)}  {ids or '-'}"
                )
            )
        out += [rule, ""]
    out += _lease_table(leases)
    return "\n".join(out) + "\n"


def _header(pool: Pool) -> str:
    if pool.simulated:
        return (
            f"Simulated pool (bitfusion-sim {__version__}): {pool.source}, no real GPUs behind it"
        )
    return f"Local pool (bitfusion-sim {__version__}): {pool.source}"


def _stale_lines(pool: Pool, leases: list[Lease]) -> list[str]:
    known = {(s.index, g.index) for s in pool.servers for g in s.gpus}
    return [
        f"Lease {lease.lease_id} ({lease.slice_text}) is on server {lease.server} GPUs "
        f"{list(lease.gpus)}, which the pool no longer has: release_gpus {lease.lease_id} or reset"
        for lease in leases
        if any((lease.server, g) not in known for g in lease.gpus)
    ]


def _lease_table(leases: list[Lease]) -> list[str]:
    rule = "+" + "-" * (_WIDTH - 2) + "+"
    if not leases:
        return [rule, _row("No leases: every GPU is free."), rule]
    rows = [
        rule,
        _row(
            f"{'Lease':>5}  {'Server':>6}  {'GPUs':<5}  {'Slice':<8}  {'MiB/GPU':>7}  {'Since':<20}  Holder"
        ),
        "|" + "=" * (_WIDTH - 2) + "|",
    ]
    for lease in leases:
        gpus = ",".join(str(g) for g in lease.gpus)
        mib = max(lease.memory_mib, default=0)
        holder = holder_text(lease) if lease.holder else "request_gpus"
        rows.append(
            _row(
                f"{lease.lease_id:>5}  {lease.server:>6}  {gpus:<5}  {lease.slice_text:<8}  "
                f"{mib:>7}  {lease.since:<20}  {holder}"
            )
        )
    rows.append(rule)
    return rows


def _bar(used: int, total: int, width: int = 10) -> str:
    filled = 0 if total <= 0 else min(width, round(width * used / total))
    return "#" * filled + "." * (width - filled)


def _row(text: str) -> str:
    inner = _WIDTH - 4
    return f"| {text[:inner]:<{inner}} |"
