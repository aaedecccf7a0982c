"""The pool's shape (servers with GPUs) and the placement of a slice on it. Pure: no I/O.

Accounting is by memory per GPU, like the real Bitfusion server: ``-p F`` takes F × the GPU's memory
(rounded down, at least 1 MiB), ``-m MIB`` takes MIB; the leases on one GPU never add up to more than
its memory. All GPUs of one slice come from one server. Among the servers that can serve a slice the
first (by index) is chosen, and on it the GPUs that fit the slice most tightly (best fit), so that
whole GPUs stay free for large slices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bf_jupyter.bitfusion.sim.errors import CannotServe, UsageError
from bf_jupyter.quantity import MIB, QuantityError, parse_quantity

if TYPE_CHECKING:
    from bf_jupyter.slice import Filter, GpuSlice

__all__ = ["Gpu", "Placement", "Pool", "Server", "Usage", "check_filters", "memory_needed", "place"]

# (server index, GPU index) → MiB leased on that GPU.
Usage = Mapping[tuple[int, int], int]

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int


@dataclass(frozen=True)
class Server:
    index: int
    address: str
    hostname: str
    gpus: tuple[Gpu, ...]
    cuda_version: str = ""
    driver_version: str = ""
    has_rdma: bool = False


@dataclass(frozen=True)
class Pool:
    """The servers, whether they are simulated (virtual) or this machine's GPUs, and where the
    description came from (for ``health`` and listings)."""

    servers: tuple[Server, ...]
    simulated: bool
    source: str

    @property
    def gpu_count(self) -> int:
        return sum(len(s.gpus) for s in self.servers)


@dataclass(frozen=True)
class Placement:
    """Where a slice goes: GPUs of one server and the MiB taken on each (same order)."""

    server: Server
    gpus: tuple[Gpu, ...]
    memory_mib: tuple[int, ...]


def memory_needed(gpu_slice: GpuSlice, gpu: Gpu) -> int:
    """MiB the slice takes on ``gpu``: ⌊percent × memory⌋ (at least 1), or the ``-m`` amount."""
    if gpu_slice.percent is not None:
        return max(1, gpu.memory_mib * gpu_slice.percent // 100)
    return gpu_slice.memory_mib or 0


def check_filters(filters: Iterable[Filter]) -> None:
    """Refuse filter values this pool cannot compare (``UsageError``), before any pool access."""
    for term in filters:
        if term.key == "server.has-rdma":
            _parse_bool(term)
        elif term.key == "device.id":
            _parse_index(term)
        elif term.key == "device.phy-memory":
            _parse_mib(term)


def place(pool: Pool, gpu_slice: GpuSlice, used: Usage) -> Placement:
    """Choose GPUs for ``gpu_slice`` given the MiB already leased.

    Raises ``CannotServe`` (one line: what was asked, what is free): ``permanent`` when no server
    could serve the slice even with all its GPUs free, else the pool is just full for now.
    """
    check_filters(gpu_slice.filters)
    server_terms = [f for f in gpu_slice.filters if f.key.startswith("server.")]
    device_terms = [f for f in gpu_slice.filters if f.key.startswith("device.")]
    servers = [s for s in pool.servers if all(_server_matches(s, f) for f in server_terms)]
    asked = _asked(gpu_slice)
    if not servers:
        raise CannotServe(
            f"cannot serve {asked}: no server matches {_terms(server_terms)} "
            f"(servers: {'; '.join(_server_label(s) for s in pool.servers) or 'none'})",
            permanent=True,
        )
    possible = False
    for server in servers:
        eligible = [
            g
            for g in server.gpus
            if all(_device_matches(g, f) for f in device_terms)
            and memory_needed(gpu_slice, g) <= g.memory_mib
        ]
        if len(eligible) < gpu_slice.amount:
            continue
        possible = True
        free = [g for g in eligible if _free(server, g, used) >= memory_needed(gpu_slice, g)]
        if len(free) >= gpu_slice.amount:
            # Best fit: the GPUs left with the least memory once the slice is placed.
            free.sort(key=lambda g: (_free(server, g, used) - memory_needed(gpu_slice, g), g.index))
            chosen = tuple(sorted(free[: gpu_slice.amount], key=lambda g: g.index))
            return Placement(server, chosen, tuple(memory_needed(gpu_slice, g) for g in chosen))
    matching = f" matching {_terms(device_terms)}" if device_terms else ""
    if not possible:
        raise CannotServe(
            f"cannot serve {asked}: no server has {gpu_slice.amount} GPU"
            f"{'s' if gpu_slice.amount != 1 else ''}{matching} large enough "
            f"({'; '.join(_server_label(s) for s in servers)})",
            permanent=True,
        )
    needs = sorted(
        {memory_needed(gpu_slice, g) for s in servers for g in s.gpus if g.memory_mib > 0}
    )
    per_gpu = f" ({needs[0]} MiB per GPU)" if len(needs) == 1 else ""
    raise CannotServe(
        f"cannot serve {asked}{per_gpu} now: free{matching}: "
        + "; ".join(_free_label(s, device_terms, used) for s in servers),
        permanent=False,
    )


def _free(server: Server, gpu: Gpu, used: Usage) -> int:
    return gpu.memory_mib - used.get((server.index, gpu.index), 0)


def _asked(gpu_slice: GpuSlice) -> str:
    per_gpu = (
        f"{gpu_slice.percent} % of each GPU"
        if gpu_slice.percent is not None
        else f"{gpu_slice.memory_mib} MiB on each GPU"
    )
    gpus = f"{gpu_slice.amount} GPU{'s' if gpu_slice.amount != 1 else ''}"
    where = " of one server" if gpu_slice.amount > 1 else ""
    return f"{gpus}{where} × {per_gpu}{''.join(f' {f}' for f in gpu_slice.filters)}"


def _terms(terms: Iterable[Filter]) -> str:
    return " ".join(str(t) for t in terms)


def _server_label(server: Server) -> str:
    gpus = ", ".join(f"GPU {g.index} {g.memory_mib} MiB ({g.name})" for g in server.gpus)
    return f"server {server.index} [{server.address}] host {server.hostname}: {gpus or 'no GPUs'}"


def _free_label(server: Server, device_terms: list[Filter], used: Usage) -> str:
    gpus = [g for g in server.gpus if all(_device_matches(g, f) for f in device_terms)]
    listed = ", ".join(
        f"GPU {g.index} {_free(server, g, used)} of {g.memory_mib} MiB" for g in gpus
    )
    return f"server {server.index} [{server.address}] {listed or 'no matching GPU'}"


def _server_matches(server: Server, term: Filter) -> bool:
    value = term.value.strip()
    if term.key == "server.addr":
        host = server.address.rsplit(":", 1)[0] if ":" in server.address else server.address
        return value in {server.address, host}
    if term.key == "server.hostname":
        return value.lower() == server.hostname.lower()
    if term.key == "server.has-rdma":
        return _parse_bool(term) == server.has_rdma
    if term.key == "server.cuda-version":
        return _version_matches(value, server.cuda_version)
    if term.key == "server.driver-version":
        return _version_matches(value, server.driver_version)
    return True


def _device_matches(gpu: Gpu, term: Filter) -> bool:
    if term.key == "device.id":
        return _parse_index(term) == gpu.index
    if term.key == "device.name":
        return term.value.strip().lower() in gpu.name.lower()
    if term.key == "device.phy-memory":
        return _parse_mib(term) == gpu.memory_mib
    return True


def _version_matches(wanted: str, actual: str) -> bool:
    """``12`` matches ``12.4`` and ``12.4.1``; ``12.4`` does not match ``12.40``."""
    return actual == wanted or actual.startswith(wanted + ".")


def _parse_bool(term: Filter) -> bool:
    value = term.value.strip().lower()
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise UsageError(f"filter {term} has no yes/no value: use {term.key}=true or {term.key}=false")


def _parse_index(term: Filter) -> int:
    if term.value.strip().isdigit():
        return int(term.value)
    raise UsageError(f"filter {term} is not a GPU index: use e.g. {term.key}=0")


def _parse_mib(term: Filter) -> int:
    """A plain number is MiB (as ``list_gpus`` shows); a quantity such as ``16Gi`` is converted."""
    value = term.value.strip()
    try:
        number = parse_quantity(value)
    except QuantityError:
        number = None
    if number is not None and value.isdigit():
        return int(number)
    if number is not None and number % MIB == 0 and number > 0:
        return int(number // MIB)
    raise UsageError(
        f"filter {term} is not a memory size: use MiB as list_gpus shows it (e.g. {term.key}=16384) or a quantity such as 16Gi"
    )
