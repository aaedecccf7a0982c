"""ResourceQuota: admission (atomic, Kubernetes' wording) and the quota controller's status.used.

Usage is computed from the store at admission time, in the same synchronous stretch as the write
(see ``registry``), so concurrent creates can never overshoot ``hard``. Terminal pods (Succeeded,
Failed) stop counting, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from bf_jupyter.quantity import QuantityError, parse_quantity
from tests.emulator import errors
from tests.emulator.kinds import ResourceType, resource_for_kind

if TYPE_CHECKING:
    from tests.emulator.registry import AdmissionAttributes
    from tests.emulator.store import Store


Obj = dict[str, Any]
_BINARY = [
    ("Ei", 1 << 60),
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
]
_COMPUTE_REQUIRED = (
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    "cpu",
    "memory",
)


def format_quantity(value: Fraction, like: str = "") -> str:
    """The API's canonical text for a sum: binary suffixes for memory-like values, millis for
    fractions, plain integers otherwise."""
    if value.denominator != 1:
        return f"{int(value * 1000)}m"
    number = int(value)
    if number and any(like.endswith(s) for s, _ in _BINARY):
        for suffix, size in _BINARY:
            if number % size == 0:
                return f"{number // size}{suffix}"
    return str(number)


def _q(value: Any) -> Fraction:
    try:
        return parse_quantity(value)
    except QuantityError:
        return Fraction(0)


def _container_sum(containers: Iterable[Obj], section: str) -> dict[str, Fraction]:
    total: dict[str, Fraction] = {}
    for container in containers:
        for name, value in ((container.get("resources") or {}).get(section) or {}).items():
            total[name] = total.get(name, Fraction(0)) + _q(value)
    return total


def pod_usage(pod: Obj) -> dict[str, Fraction]:
    """What one pod charges: ``pods``, ``requests.X``/``X`` and ``limits.X``; init containers count
    as the max of any one of them against the sum of the app containers, per resource."""
    spec = pod.get("spec") or {}
    usage: dict[str, Fraction] = {"pods": Fraction(1)}
    for section in ("requests", "limits"):
        totals = _container_sum(spec.get("containers") or [], section)
        for init in spec.get("initContainers") or []:
            for name, value in _container_sum([init], section).items():
                totals[name] = max(totals.get(name, Fraction(0)), value)
        for name, value in totals.items():
            usage[f"{section}.{name}"] = value
            if section == "requests" and name in ("cpu", "memory", "ephemeral-storage"):
                usage[name] = value
    return usage


def _exceeded_message(
    quota: Obj,
    exceeded: list[str],
    *,
    requested: dict[str, Fraction],
    used: dict[str, Fraction],
    hard: dict[str, Fraction],
) -> str:
    """kube-apiserver's words, listing only the exceeded resources."""
    spec_hard = quota["spec"]["hard"]

    def shown(values: dict[str, Fraction]) -> str:
        return ",".join(f"{k}={format_quantity(values[k], spec_hard[k])}" for k in exceeded)

    return (
        f"exceeded quota: {quota['metadata']['name']}, requested: {shown(requested)}, "
        f"used: {shown(used)}, limited: {shown(hard)}"
    )


def pod_counts(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


class ResourceQuotas:
    """ResourceQuota admission plus the controller that keeps ``status`` current."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pods = resource_for_kind("Pod")
        self._quotas = resource_for_kind("ResourceQuota")
        self._writing = False
        store.subscribe(self._on_change)

    def used(self, namespace: str, keys: Iterable[str]) -> dict[str, Fraction]:
        wanted = set(keys)
        used = {key: Fraction(0) for key in wanted}
        for pod in self.store.list(self._pods, namespace):
            if not pod_counts(pod):
                continue
            for key, value in pod_usage(pod).items():
                if key in wanted:
                    used[key] += value
        for key in wanted:
            if key.startswith("count/"):
                plural = key.removeprefix("count/")
                used[key] = Fraction(
                    sum(
                        1
                        for kind, o in self.store.all_objects()
                        if kind.plural == plural and o["metadata"].get("namespace") == namespace
                    )
                )
        return used

    def admit(self, attrs: AdmissionAttributes) -> None:
        """Raise the API's 403 when creating ``attrs.obj`` would exceed a quota of its namespace."""
        if attrs.operation != "CREATE" or attrs.obj is None or not attrs.resource.namespaced:
            return
        for quota in self.store.list(self._quotas, attrs.namespace):
            hard = {k: _q(v) for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()}
            requested = self._requested(attrs.resource, attrs.obj, hard)
            if attrs.resource.kind == "Pod":
                self._require_compute(quota["metadata"]["name"], attrs, hard)
            if not requested:
                continue
            used = self.used(attrs.namespace, requested)
            exceeded = sorted(k for k, v in requested.items() if used[k] + v > hard[k])
            if exceeded:
                raise errors.forbidden(
                    attrs.resource.plural,
                    attrs.name,
                    _exceeded_message(quota, exceeded, requested=requested, used=used, hard=hard),
                )

    @staticmethod
    def _requested(
        resource: ResourceType, obj: Obj, hard: dict[str, Fraction]
    ) -> dict[str, Fraction]:
        charged: dict[str, Fraction] = {f"count/{resource.plural}": Fraction(1)}
        if resource.kind == "Pod":
            charged.update(pod_usage(obj))
        return {k: v for k, v in charged.items() if k in hard}

    @staticmethod
    def _require_compute(
        quota_name: str, attrs: AdmissionAttributes, hard: dict[str, Fraction]
    ) -> None:
        spec = (attrs.obj or {}).get("spec") or {}
        missing: list[str] = []
        for key in sorted(k for k in hard if k in _COMPUTE_REQUIRED):
            section, _, name = key.rpartition(".")
            section = section or "requests"
            lacking = [
                c.get("name", "")
                for c in spec.get("containers") or []
                if name not in ((c.get("resources") or {}).get(section) or {})
            ]
            if lacking:
                missing.append(f"{key} for: {','.join(lacking)}")
        if missing:
            raise errors.forbidden(
                attrs.resource.plural,
                attrs.name,
                f"failed quota: {quota_name}: must specify {'; '.join(missing)}",
            )

    # ----- the quota controller: status.hard and status.used -------------------------------------------

    def _on_change(self, event_type: str, resource: ResourceType, obj: Obj) -> None:
        if self._writing:
            return
        namespace = obj["metadata"].get("namespace", "")
        if (resource.kind == "ResourceQuota" and event_type != "DELETED") or (
            resource.namespaced and resource.kind not in {"ResourceQuota", "Event"}
        ):
            self.refresh(namespace)

    def refresh(self, namespace: str) -> None:
        """Rewrite each quota's status of ``namespace`` where it changed."""
        self._writing = True
        try:
            for quota in self.store.list(self._quotas, namespace):
                spec_hard = (quota.get("spec") or {}).get("hard") or {}
                used = self.used(namespace, spec_hard)
                status = {
                    "hard": dict(spec_hard),
                    "used": {k: format_quantity(used[k], spec_hard[k]) for k in spec_hard},
                }
                if quota.get("status") != status:
                    quota["status"] = status
                    self.store.update(self._quotas, quota)
        finally:
            self._writing = False
