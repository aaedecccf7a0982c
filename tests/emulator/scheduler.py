"""The scheduler: binds each pending pod to a node whose allocatable resources, minus what the pods
already bound there request, fit the pod's requests; otherwise marks it ``PodScheduled=False``
(``Unschedulable``) with kube-scheduler's message and a ``FailedScheduling`` event. Pending pods are
retried whenever capacity may have changed (a pod finished or went, a node changed)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from bf_jupyter.quantity import QuantityError, parse_quantity
from tests.emulator import errors
from tests.emulator.events import EventRecorder
from tests.emulator.kinds import ResourceType, resource_for_kind
from tests.emulator.quota import pod_counts
from tests.emulator.store import now_rfc3339

if TYPE_CHECKING:
    from tests.emulator.registry import Registry

Obj = dict[str, Any]
_log = logging.getLogger(__name__)
SCHEDULER_NAME = "default-scheduler"


def _q(value: Any) -> Fraction:
    try:
        return parse_quantity(value)
    except QuantityError:
        return Fraction(0)


def pod_requests(pod: Obj) -> dict[str, Fraction]:
    """Per resource: max(sum of app containers, largest init container), plus one ``pods``."""
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    for container in spec.get("containers") or []:
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = total.get(name, Fraction(0)) + _q(value)
    for init in spec.get("initContainers") or []:
        for name, value in ((init.get("resources") or {}).get("requests") or {}).items():
            total[name] = max(total.get(name, Fraction(0)), _q(value))
    total["pods"] = Fraction(1)
    return total


class Scheduler:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self.events = EventRecorder(self.store, SCHEDULER_NAME)
        self._pods = resource_for_kind("Pod")
        self._nodes = resource_for_kind("Node")
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.store.subscribe(self._on_change)

    def _on_change(self, event_type: str, resource: ResourceType, obj: Obj) -> None:
        if resource.kind in ("Pod", "Node"):
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self.schedule_pending()
            except Exception:  # a scheduler bug must not stop scheduling
                _log.exception("scheduling pass failed")

    def schedule_pending(self) -> None:
        pending = [
            pod
            for pod in self.store.list(self._pods, None)
            if not (pod.get("spec") or {}).get("nodeName")
            and not pod["metadata"].get("deletionTimestamp")
            and (pod.get("spec") or {}).get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
        ]
        pending.sort(
            key=lambda p: (
                p["metadata"]["creationTimestamp"],
                int(p["metadata"]["resourceVersion"]),
            )
        )
        for pod in pending:
            self._schedule(pod)

    def _free(self, node: Obj) -> dict[str, Fraction]:
        free = {k: _q(v) for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()}
        for pod in self.store.list(self._pods, None):
            if (pod.get("spec") or {}).get("nodeName") == node["metadata"]["name"] and pod_counts(
                pod
            ):
                for name, value in pod_requests(pod).items():
                    free[name] = free.get(name, Fraction(0)) - value
        return free

    def _schedule(self, pod: Obj) -> None:
        nodes = self.store.list(self._nodes, None)
        reasons: Counter[str] = Counter()
        wanted = pod_requests(pod)
        for node in nodes:
            if (node.get("spec") or {}).get("unschedulable"):
                reasons["node(s) were unschedulable"] += 1
                continue
            free = self._free(node)
            short = sorted(
                name
                for name, value in wanted.items()
                if value > 0 and free.get(name, Fraction(0)) < value
            )
            if not short:
                self._bind(pod, node["metadata"]["name"])
                return
            for name in short:
                reasons["Too many pods" if name == "pods" else f"Insufficient {name}"] += 1
        detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        message = (
            f"0/{len(nodes)} nodes are available: {detail}."
            if detail
            else f"0/{len(nodes)} nodes are available."
        )
        self._mark_unschedulable(pod, message)

    def _bind(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        try:
            bound = self.registry.bind(meta["namespace"], meta["name"], node)
        except errors.ApiError as error:
            _log.info("binding %s/%s failed: %s", meta["namespace"], meta["name"], error)
            return
        self.events.record(
            bound,
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
        )

    def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        status = pod.setdefault("status", {})
        conditions = status.get("conditions") or []
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if (
            current
            and current.get("reason") == "Unschedulable"
            and current.get("message") == message
        ):
            return
        status["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"] + [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            }
        ]
        updated = self.registry.update_status_now(self._pods, pod)
        self.events.record(updated, "Warning", "FailedScheduling", message)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
