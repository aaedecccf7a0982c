"""One GPU reading of a kernel, as ``GET kernels`` and the kernel's control reply carry it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NO_READING", "GpuReading"]

NO_READING = "no GPU reading"


@dataclass(frozen=True)
class GpuReading:
    """Memory in use by the kernel's processes and the slice's limit (MiB), their GPU utilisation
    (%) and for how long it has been zero (s). A field is None where it is not known; ``over_share``
    says the processes hold more memory than the slice allows (a framework ignored the cap)."""

    memory_used_mib: int | None
    memory_limit_mib: int | None
    utilization_percent: int | None
    idle_seconds: int | None
    over_share: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "memory_used_mib": self.memory_used_mib,
            "memory_limit_mib": self.memory_limit_mib,
            "utilization_percent": self.utilization_percent,
            "idle_seconds": self.idle_seconds,
            "over_share": self.over_share,
        }

    @classmethod
    def from_json(cls, data: Any) -> GpuReading | None:
        """A reading sent by a kernel; None when ``data`` is not one (a kernel cannot make the
        server fail, nor slip a wrong type into ``GET kernels``)."""
        if not isinstance(data, Mapping):
            return None
        fields = {
            name: _count(data.get(name))
            for name in (
                "memory_used_mib",
                "memory_limit_mib",
                "utilization_percent",
                "idle_seconds",
            )
        }
        util = fields["utilization_percent"]
        if util is not None and util > 100:
            fields["utilization_percent"] = None
        return cls(**fields, over_share=data.get("over_share") is True)

    def describe(self) -> str:
        """``2048 / 8192 MiB · 35 % · idle 0 s`` for people (unknown parts left out)."""
        parts = []
        if self.memory_used_mib is not None:
            limit = "?" if self.memory_limit_mib is None else str(self.memory_limit_mib)
            parts.append(f"{self.memory_used_mib} / {limit} MiB")
        if self.utilization_percent is not None:
            parts.append(f"{self.utilization_percent} %")
        if self.idle_seconds:
            parts.append(f"idle {self.idle_seconds} s")
        if self.over_share:
            parts.append("over its share")
        return " · ".join(parts) or NO_READING


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return int(value) if 0 <= value < 2**53 else None
