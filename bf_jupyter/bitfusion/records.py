"""Typed views of what the Bitfusion client prints, parsed defensively.

The real client's output formats are not public, so parsing never fails: lines it does not
recognise are kept in ``unparsed`` and the raw text is always available. ``bitfusion-sim`` prints the
same shapes (plus lease lines and a ``simulated`` marker), so one parser serves both.

``list_gpus`` shape::

     - server 0 [10.1.2.3:56001]: running 1 tasks
       |- GPU 0: free memory 8080 MiB / 16160 MiB (Tesla V100-PCIE-16GB)
       |- lease 7: 1x50% on GPUs [0] held by pid 4242 (python) since 2026-11-26T12:00:00Z
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "GpuRecord",
    "HealthCheck",
    "HealthReport",
    "LeaseRecord",
    "PoolListing",
    "ServerRecord",
    "parse_health",
    "parse_list_gpus",
]

_SERVER = re.compile(
    r"^\s*-\s*server\s+(?P<index>\d+)\s*\[(?P<address>[^\]]*)\]:?\s*(?P<status>.*)$", re.I
)
_GPU = re.compile(
    r"^\s*\|-\s*GPU\s+(?P<index>\d+):\s*free memory\s+(?P<free>\d+)\s*MiB\s*/\s*(?P<total>\d+)\s*MiB"
    r"(?:\s*\((?P<name>.*)\))?\s*$",
    re.I,
)
_LEASE = re.compile(
    r"^\s*\|-\s*lease\s+(?P<id>\S+):\s*(?P<slice>.+?)\s+on GPUs?\s*\[(?P<gpus>[\d,\s]*)\]"
    r"\s+held by\s+(?P<holder>.+?)\s+since\s+(?P<since>\S+)\s*$",
    re.I,
)
_SIMULATED = re.compile(r"\bsimulated\b", re.I)
_CHECK = re.compile(
    r"^\s*(?:\[(?P<level>[A-Z]+)\]\s*(?:\S+\s+)?)?(?P<text>.*?)\s*\b(?P<verdict>OK|PASS(?:ED)?|FAIL(?:ED)?|ERROR|WARN(?:ING)?)\s*$",
    re.I,
)


@dataclass(frozen=True)
class GpuRecord:
    """One GPU of a Bitfusion server."""

    index: int
    memory_total_mib: int
    memory_free_mib: int
    name: str | None = None

    @property
    def used_fraction(self) -> float:
        if self.memory_total_mib <= 0:
            return 0.0
        used = self.memory_total_mib - self.memory_free_mib
        return min(1.0, max(0.0, used / self.memory_total_mib))

    @property
    def memory_used_mib(self) -> int:
        return max(0, self.memory_total_mib - self.memory_free_mib)

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "name": self.name,
            "memory_total_mib": self.memory_total_mib,
            "memory_free_mib": self.memory_free_mib,
            "memory_used_mib": self.memory_used_mib,
            "used_fraction": round(self.used_fraction, 4),
        }


@dataclass(frozen=True)
class LeaseRecord:
    """A slice held on a server (reported by ``bitfusion-sim``; the real client does not list them)."""

    lease_id: str
    slice_text: str
    gpus: tuple[int, ...]
    holder: str
    since: str

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.lease_id,
            "slice": self.slice_text,
            "gpus": list(self.gpus),
            "holder": self.holder,
            "since": self.since,
        }


@dataclass(frozen=True)
class ServerRecord:
    index: int
    address: str
    status: str
    gpus: tuple[GpuRecord, ...] = ()
    leases: tuple[LeaseRecord, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "address": self.address,
            "status": self.status,
            "gpus": [g.to_dict() for g in self.gpus],
            "leases": [lease.to_dict() for lease in self.leases],
        }


@dataclass(frozen=True)
class PoolListing:
    """What ``list_gpus`` reported."""

    servers: tuple[ServerRecord, ...]
    simulated: bool
    raw: str
    unparsed: tuple[str, ...] = field(default=())

    @property
    def total_gpus(self) -> int:
        return sum(len(s.gpus) for s in self.servers)

    @property
    def largest_server_gpus(self) -> int:
        """All GPUs of one run come from one server: the most a single slice can ask for."""
        return max((len(s.gpus) for s in self.servers), default=0)

    @property
    def gpu_memory_mib(self) -> int | None:
        """Per-GPU memory when all GPUs agree (what memory-mode quota needs), else None."""
        sizes = {g.memory_total_mib for s in self.servers for g in s.gpus}
        return sizes.pop() if len(sizes) == 1 else None

    def to_dict(self) -> dict[str, object]:
        """JSON-able: servers with GPUs and leases, totals, and the lines not understood."""
        return {
            "simulated": self.simulated,
            "total_gpus": self.total_gpus,
            "largest_server_gpus": self.largest_server_gpus,
            "gpu_memory_mib": self.gpu_memory_mib,
            "servers": [server.to_dict() for server in self.servers],
            "unparsed": list(self.unparsed),
        }


@dataclass(frozen=True)
class HealthCheck:
    text: str
    passed: bool


@dataclass(frozen=True)
class HealthReport:
    """What ``health`` reported; ``healthy`` follows the exit code and any failed check."""

    healthy: bool
    checks: tuple[HealthCheck, ...]
    raw: str

    def to_dict(self) -> dict[str, object]:
        return {
            "healthy": self.healthy,
            "checks": [{"text": c.text, "passed": c.passed} for c in self.checks],
        }


def parse_list_gpus(text: str) -> PoolListing:
    """Parse ``list_gpus`` output. Never raises: unknown lines land in ``unparsed``."""
    servers: list[ServerRecord] = []
    gpus: list[GpuRecord] = []
    leases: list[LeaseRecord] = []
    unparsed: list[str] = []
    current: ServerRecord | None = None

    def close() -> None:
        if current is not None:
            servers.append(
                ServerRecord(
                    current.index, current.address, current.status, tuple(gpus), tuple(leases)
                )
            )
        gpus.clear()
        leases.clear()

    for line in text.splitlines():
        if not line.strip():
            continue
        if match := _SERVER.match(line):
            close()
            address = _SIMULATED.sub("", match["address"]).replace("()", "").strip()
            current = ServerRecord(int(match["index"]), address, match["status"].strip())
        elif current is not None and (match := _GPU.match(line)):
            total, free = int(match["total"]), int(match["free"])
            gpus.append(
                GpuRecord(int(match["index"]), total, min(free, total), (match["name"] or None))
            )
        elif current is not None and (match := _LEASE.match(line)):
            ids = tuple(int(g) for g in re.findall(r"\d+", match["gpus"]))
            leases.append(
                LeaseRecord(match["id"], match["slice"], ids, match["holder"], match["since"])
            )
        else:
            unparsed.append(line)
    close()
    return PoolListing(tuple(servers), bool(_SIMULATED.search(text)), text, tuple(unparsed))


def parse_health(text: str, exit_code: int) -> HealthReport:
    """Parse ``health`` output: lines ending in OK/PASS/FAIL/ERROR become checks. Never raises."""
    checks = []
    for line in text.splitlines():
        match = _CHECK.match(line)
        if match and match["text"]:
            verdict = match["verdict"].upper()
            checks.append(
                HealthCheck(match["text"].rstrip(" .:-"), not verdict.startswith(("FAIL", "ERROR")))
            )
    healthy = exit_code == 0 and all(c.passed for c in checks)
    return HealthReport(healthy, tuple(checks), text)
