"""What the device plugin advertises: one device per quota unit of every GPU in the real pool.

A node's ``bitfusion.io/gpu`` capacity is units-per-GPU × the GPUs that ``list_gpus`` reports, so
the scheduler's view follows the pool instead of a constant. Device IDs name their place in the
pool (``s<server>-g<gpu>-u<unit>``), so the same pool yields the same IDs after any restart and the
kubelet's checkpointed allocations stay valid. Pure: no I/O, the probe feeds it records.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bf_jupyter.bitfusion.records import HealthReport, PoolListing

__all__ = ["HEALTHY", "UNHEALTHY", "Advertisement", "UnitId", "advertise", "advertise_unreachable"]

# The two health values the kubelet understands (v1beta1 constants).
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"

_UNIT_ID = re.compile(r"^s(?P<server>\d+)-g(?P<gpu>\d+)-u(?P<unit>\d+)$")


@dataclass(frozen=True, order=True)
class UnitId:
    """One quota unit: unit ``unit`` of GPU ``gpu`` of server ``server``, as ``list_gpus`` numbers them."""

    server: int
    gpu: int
    unit: int

    def __str__(self) -> str:
        return f"s{self.server}-g{self.gpu}-u{self.unit}"

    @property
    def gpu_key(self) -> tuple[int, int]:
        """(server, GPU): the GPU this unit belongs to."""
        return (self.server, self.gpu)

    @classmethod
    def parse(cls, text: str) -> UnitId:
        """Read an ID this plugin made. Raises ``ValueError`` naming the text and the accepted form."""
        match = _UNIT_ID.match(text)
        if match is None:
            raise ValueError(
                f"device ID {text!r} is not one of ours: expected s<server>-g<gpu>-u<unit>"
            )
        return cls(int(match["server"]), int(match["gpu"]), int(match["unit"]))

    @classmethod
    def try_parse(cls, text: str) -> UnitId | None:
        """Like ``parse``, but None for a foreign ID."""
        try:
            return cls.parse(text)
        except ValueError:
            return None


@dataclass(frozen=True)
class Advertisement:
    """The device list at one moment: every unit of ``gpus`` with one shared health.

    Two advertisements compare equal exactly when the kubelet would see the same list, so a change
    (and only a change) is worth a ListAndWatch message. ``reason`` explains an unhealthy list to
    people and takes no part in the comparison.
    """

    gpus: tuple[tuple[int, int], ...]  # (server index, GPU index), sorted
    units_per_gpu: int
    healthy: bool
    reason: str = field(default="", compare=False)

    @property
    def capacity(self) -> int:
        """How many devices (quota units) the list holds."""
        return len(self.gpus) * self.units_per_gpu

    @property
    def health(self) -> str:
        return HEALTHY if self.healthy else UNHEALTHY

    def unit_ids(self) -> Iterator[UnitId]:
        for server, gpu in self.gpus:
            for unit in range(self.units_per_gpu):
                yield UnitId(server, gpu, unit)

    def device_ids(self) -> list[str]:
        """Every device ID, in pool order."""
        return [str(unit) for unit in self.unit_ids()]

    def holds(self, device_id: str) -> bool:
        """Whether ``device_id`` is one of this list's devices."""
        unit = UnitId.try_parse(device_id)
        return (
            unit is not None and unit.unit < self.units_per_gpu and unit.gpu_key in set(self.gpus)
        )

    def describe(self) -> str:
        """For logs: ``400 devices (4 GPUs × 100 units), Healthy``."""
        text = f"{self.capacity} devices ({len(self.gpus)} GPUs × {self.units_per_gpu} units), {self.health}"
        return f"{text}: {self.reason}" if self.reason else text


def advertise(listing: PoolListing, health: HealthReport, *, units_per_gpu: int) -> Advertisement:
    """The devices of a pool that ``list_gpus`` could list; healthy when ``health`` passed."""
    gpus = tuple(
        sorted((server.index, gpu.index) for server in listing.servers for gpu in server.gpus)
    )
    return Advertisement(
        gpus, units_per_gpu, health.healthy, "" if health.healthy else _health_reason(health)
    )


def advertise_unreachable(
    previous: Advertisement | None, reason: str, *, units_per_gpu: int
) -> Advertisement:
    """The pool could not be listed: keep the last known devices (so their IDs survive) as unhealthy.

    With nothing known yet the list is empty: advertising devices nobody has seen would be a guess.
    """
    gpus = previous.gpus if previous is not None else ()
    return Advertisement(gpus, units_per_gpu, False, reason)


def _health_reason(health: HealthReport) -> str:
    failed = [check.text for check in health.checks if not check.passed]
    if failed:
        return "bitfusion health failed: " + "; ".join(failed)
    lines = [line.strip() for line in health.raw.splitlines() if line.strip()]
    return "bitfusion health failed" + (f": {lines[-1]}" if lines else "")
