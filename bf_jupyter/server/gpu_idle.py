"""Idle-GPU release: when a kernel whose GPU sits idle is flagged, and when it is stopped.

Pure: the watch (``gpu_watch``) feeds it readings and the kernel's execution state and acts on the
verdict. Off unless ``gpu_idle_timeout`` is set (server-wide, or per kernelspec in ``kernel.json``
``metadata.bf_jupyter``). A kernel that is running a cell is never stopped: its GPU may be idle while
the cell prepares data, and stopping it would lose the work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from bf_jupyter.gpumeter import GpuReading

__all__ = ["IDLE_ACTIONS", "IdlePolicy", "IdleVerdict", "idle_verdict"]

IdleAction = Literal["shutdown", "release"]
IDLE_ACTIONS: tuple[IdleAction, ...] = ("shutdown", "release")
METADATA_KEY = "bf_jupyter"  # kernel.json: {"metadata": {"bf_jupyter": {"gpu_idle_timeout": 1800}}}


@dataclass(frozen=True)
class IdlePolicy:
    """``timeout`` seconds of idle GPU before ``action`` (0: never); the flag shows ``warning``
    seconds before. ``release`` frees the slice and keeps the kernel where its backend can, else
    shuts the kernel down."""

    timeout: float = 0.0
    warning: float = 300.0
    action: IdleAction = "shutdown"

    def __post_init__(self) -> None:
        if self.timeout < 0 or self.warning < 0:
            raise ValueError(
                f"gpu_idle_timeout {self.timeout:g} / gpu_idle_warning {self.warning:g} is "
                "negative: use seconds ≥ 0 (0 turns idle release off)"
            )
        if self.action not in IDLE_ACTIONS:
            raise ValueError(
                f"gpu_idle_action {self.action!r} is not known: use {' or '.join(IDLE_ACTIONS)}"
            )

    def for_kernelspec(self, metadata: Mapping[str, Any] | None) -> IdlePolicy:
        """This policy with a kernelspec's own ``gpu_idle_timeout``/``_warning``/``_action``.
        Raises ``ValueError`` naming the bad value."""
        own = (metadata or {}).get(METADATA_KEY) or {}
        if not isinstance(own, Mapping):
            return self
        changes: dict[str, Any] = {}
        for name in ("timeout", "warning"):
            value = own.get(f"gpu_idle_{name}")
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"gpu_idle_{name} {value!r} is not a number of seconds")
                changes[name] = float(value)
        if own.get("gpu_idle_action") is not None:
            changes["action"] = own["gpu_idle_action"]
        return replace(self, **changes) if changes else self


@dataclass(frozen=True)
class IdleVerdict:
    """What the sidebar shows (``idle_seconds`` so far, ``stop_in_seconds`` left, ``action``) and
    whether to act now."""

    idle_seconds: int
    stop_in_seconds: int
    action: IdleAction
    act_now: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "idle_seconds": self.idle_seconds,
            "stop_in_seconds": self.stop_in_seconds,
            "action": self.action,
        }


def idle_verdict(
    reading: GpuReading | None, policy: IdlePolicy, *, execution_state: str
) -> IdleVerdict | None:
    """None while nothing is to be shown (off, no reading, idle time unknown or short)."""
    if policy.timeout <= 0 or reading is None or reading.idle_seconds is None:
        return None
    idle = reading.idle_seconds
    if idle < policy.timeout - policy.warning:
        return None
    left = max(0, int(policy.timeout - idle))
    busy = execution_state == "busy"
    return IdleVerdict(idle, left, policy.action, act_now=left == 0 and not busy)
