"""A pod's status as the kubelet composes it: container statuses, the phase rules of the
kubelet's ``getPhase``, and conditions whose transition times move only when they flip."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

Obj = dict[str, Any]
HOST_IP = "127.0.0.1"


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_container_status(container: Obj, state: Obj) -> Obj:
    return {
        "name": container["name"],
        "state": state,
        "lastState": {},
        "ready": False,
        "restartCount": 0,
        "image": container.get("image", ""),
        "imageID": "",
        "started": False,
    }


def pod_phase(
    *, failed: bool, initialized: bool, statuses: Iterable[Obj], restart_policy: str
) -> str:
    """Pending until initialised and every container started once; Running while any runs or
    will restart; then Succeeded when every container exited 0, else Failed."""
    if failed:
        return "Failed"
    if not initialized:
        return "Pending"
    states = list(statuses)
    waiting = sum(1 for s in states if "waiting" in s["state"] and not s["lastState"])
    running = sum(1 for s in states if "running" in s["state"])
    stopped = [
        s
        for s in states
        if "terminated" in s["state"] or ("waiting" in s["state"] and s["lastState"])
    ]
    if waiting:
        return "Pending"
    if running or restart_policy == "Always" or any("waiting" in s["state"] for s in stopped):
        return "Running"
    succeeded = all(s["state"].get("terminated", {}).get("exitCode") == 0 for s in stopped)
    return "Succeeded" if succeeded else "Failed"


def conditions(previous: Iterable[Obj], wanted: dict[str, bool]) -> list[Obj]:
    """``wanted`` (type → true?) as conditions; a condition keeps its transition time unless it flips."""
    before = {c["type"]: c for c in previous}
    now = now_rfc3339()
    result = []
    for kind, value in wanted.items():
        text = "True" if value else "False"
        old = before.get(kind)
        since = old["lastTransitionTime"] if old and old.get("status") == text else now
        result.append(
            {"type": kind, "status": text, "lastProbeTime": None, "lastTransitionTime": since}
        )
    return result


def pod_status(
    *,
    phase: str,
    pod_ip: str,
    started_at: str,
    condition_list: list[Obj],
    statuses: Iterable[Obj],
    init_statuses: Iterable[Obj],
) -> Obj:
    status: Obj = {
        "phase": phase,
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": started_at,
        "conditions": condition_list,
        "containerStatuses": [dict(s) for s in statuses],
    }
    inits = [dict(s) for s in init_statuses]
    if inits:
        status["initContainerStatuses"] = inits
    return status
