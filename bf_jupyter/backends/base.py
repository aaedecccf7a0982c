"""The interface every GPU-sharing stack implements: render a slice, price it, read the pool.

A *GPU backend* (Bitfusion, HAMi, NVIDIA's device plugin, later DRA) turns a parsed ``GpuSlice``
into what Kubernetes needs (``Rendering``: container resources, pod annotations, scheduler name,
environment, node selector, claims and extra objects), says what it costs against a namespace's
ResourceQuota (``Charge``), which slice forms it honours and what isolation it gives, and reads
its pool from Node and Pod objects (``Pool``). Everything here is pure: plain dicts in, frozen
values out; the Kubernetes I/O stays with the callers.

A slice a backend cannot honour raises ``SliceRefused`` (a ``SliceError``) whose message is one
sentence naming the field, the value and the alternative.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bf_jupyter.quantity import QuantityError, parse_quantity
from bf_jupyter.slice import GpuSlice, SliceError

__all__ = [
    "NO_OFFER",
    "Charge",
    "GpuBackend",
    "Isolation",
    "Offer",
    "Pool",
    "PoolGpu",
    "PoolResource",
    "Rendering",
    "SliceForm",
    "SliceRefused",
    "quantity_int",
]

Json = dict[str, Any]

# The slice forms a backend may honour (what the picker offers and ``slice explain`` lists).
SliceForm = str
FORM_WHOLE = "whole"  # ``1``, ``2``: whole GPUs
FORM_PERCENT = "percent"  # ``1x50%``
FORM_MEMORY = "memory"  # ``2x8Gi``
FORM_CORES = "cores"  # ``cores=30`` beside a share
FORM_MIG = "mig"  # ``mig-1g.10gb`` (or a memory slice mapped onto a MIG profile)
FORM_SHARED = "shared"  # ``1xshared``: one replica of a time-sliced or MPS GPU
FORM_FILTERS = "filters"  # ``device.name=V100`` and the like
ALL_FORMS: tuple[SliceForm, ...] = (
    FORM_WHOLE,
    FORM_PERCENT,
    FORM_MEMORY,
    FORM_CORES,
    FORM_MIG,
    FORM_SHARED,
    FORM_FILTERS,
)


class SliceRefused(SliceError):
    """The slice is well formed, but this backend cannot honour it; ``accepted`` is the alternative."""


@dataclass(frozen=True)
class Isolation:
    """What a slice on this backend is protected from: a short label and one sentence."""

    label: str
    sentence: str

    def to_json(self) -> Json:
        return {"label": self.label, "sentence": self.sentence}


@dataclass(frozen=True)
class Offer:
    """What the cluster offers that rendering and pricing depend on (read from the pool)."""

    per_gpu_memory_bytes: int | None = None
    mig_profiles: tuple[str, ...] = ()  # resource profiles such as ``mig-1g.10gb``


NO_OFFER = Offer()  # nothing known about the cluster


@dataclass(frozen=True)
class Rendering:
    """What a slice becomes in a pod: merged into the GPU container and the pod by ``apply``."""

    limits: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    scheduler_name: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    # DRA: pod ``spec.resourceClaims`` entries and the container's ``resources.claims``.
    pod_claims: tuple[Json, ...] = ()
    container_claims: tuple[Json, ...] = ()
    # Objects created beside the pod and owned by it (e.g. a ResourceClaimTemplate).
    objects: tuple[Json, ...] = ()

    def apply(self, pod_spec: Json, metadata: Json, container: Json) -> None:
        """Merge into a pod's ``spec``, ``metadata`` and one of its containers, in place. The
        rendering wins over what is there for the keys it sets, and leaves everything else."""
        if self.limits:
            resources = container.setdefault("resources", {})
            resources.setdefault("limits", {}).update(self.limits)
        if self.container_claims:
            resources = container.setdefault("resources", {})
            resources.setdefault("claims", []).extend(dict(c) for c in self.container_claims)
        if self.env:
            env = [e for e in container.get("env") or [] if e.get("name") not in self.env]
            container["env"] = env + [{"name": k, "value": v} for k, v in self.env.items()]
        if self.annotations:
            metadata.setdefault("annotations", {}).update(self.annotations)
        if self.scheduler_name:
            pod_spec["schedulerName"] = self.scheduler_name
        if self.node_selector:
            pod_spec.setdefault("nodeSelector", {}).update(self.node_selector)
        if self.pod_claims:
            pod_spec.setdefault("resourceClaims", []).extend(dict(c) for c in self.pod_claims)

    def named(self, name: str, namespace: str, labels: Mapping[str, str]) -> Rendering:
        """The rendering for one pod: each extra object called ``name`` (``name-2``, … after the
        first) in ``namespace`` with ``labels`` (claims made from a template get them too), and
        the pod's claims renamed to match."""
        renames: dict[str, str] = {}
        objects = []
        for index, obj in enumerate(self.objects):
            new = dict(obj)
            metadata = dict(new.get("metadata") or {})
            fresh = name if index == 0 else f"{name}-{index + 1}"
            renames[str(metadata.get("name") or "")] = fresh
            metadata.update(name=fresh, namespace=namespace, labels=dict(labels))
            new["metadata"] = metadata
            if new.get("kind") == "ResourceClaimTemplate":
                spec = dict(new.get("spec") or {})
                spec["metadata"] = {"labels": dict(labels)}
                new["spec"] = spec
            objects.append(new)
        pod_claims = tuple(
            {
                **claim,
                "resourceClaimTemplateName": renames.get(
                    str(claim["resourceClaimTemplateName"]), claim["resourceClaimTemplateName"]
                ),
            }
            if "resourceClaimTemplateName" in claim
            else dict(claim)
            for claim in self.pod_claims
        )
        return replace(self, objects=tuple(objects), pod_claims=pod_claims)

    def to_json(self) -> Json:
        return {
            "limits": dict(self.limits),
            "annotations": dict(self.annotations),
            "scheduler_name": self.scheduler_name,
            "env": dict(self.env),
            "node_selector": dict(self.node_selector),
            "pod_claims": [dict(c) for c in self.pod_claims],
            "container_claims": [dict(c) for c in self.container_claims],
            "objects": [dict(o) for o in self.objects],
        }


@dataclass(frozen=True)
class Charge:
    """What a slice costs of one resource: ``amount`` counted against any of ``quota_keys`` (the
    ResourceQuota ``spec.hard`` spellings), enforced by ``enforced_by``."""

    resource: str
    amount: int
    unit: str
    quota_keys: tuple[str, ...]
    enforced_by: str = "the Kubernetes API server (ResourceQuota)"

    def to_json(self) -> Json:
        return {
            "resource": self.resource,
            "amount": self.amount,
            "unit": self.unit,
            "quota_keys": list(self.quota_keys),
            "enforced_by": self.enforced_by,
        }


@dataclass(frozen=True)
class PoolGpu:
    """One physical GPU (or MIG device) as the backend's registration reports it."""

    node: str
    id: str
    model: str
    memory_mib: int | None = None
    used_memory_mib: int | None = None
    cores: int | None = None  # compute share in percent of the GPU (100 = all of it)
    used_cores: int | None = None
    tasks: int = 0

    @property
    def free_fraction(self) -> float | None:
        if not self.memory_mib or self.used_memory_mib is None:
            return None
        return max(0.0, 1 - self.used_memory_mib / self.memory_mib)

    def to_json(self) -> Json:
        free = self.free_fraction
        return {
            "node": self.node,
            "id": self.id,
            "model": self.model,
            "memory_mib": self.memory_mib,
            "used_memory_mib": self.used_memory_mib,
            "cores": self.cores,
            "used_cores": self.used_cores,
            "tasks": self.tasks,
            "free_fraction": None if free is None else round(free, 4),
        }


@dataclass(frozen=True)
class PoolResource:
    """One extended resource on one node: what the node advertises and what bound pods request."""

    node: str
    resource: str
    allocatable: int
    used: int | None  # None: the pods could not be read

    def to_json(self) -> Json:
        return {
            "node": self.node,
            "resource": self.resource,
            "allocatable": self.allocatable,
            "used": self.used,
            "free": None if self.used is None else max(0, self.allocatable - self.used),
        }


@dataclass(frozen=True)
class Pool:
    """A backend's pool: its GPUs (when the stack registers them) and its node resources."""

    backend: str
    gpus: tuple[PoolGpu, ...] = ()
    resources: tuple[PoolResource, ...] = ()
    warnings: tuple[str, ...] = ()

    def offer(self, per_gpu_memory_bytes: int | None = None) -> Offer:
        """What rendering needs from this pool: the smallest GPU memory (unless configured) and
        the MIG profiles some node advertises."""
        memory = per_gpu_memory_bytes
        sizes = [g.memory_mib for g in self.gpus if g.memory_mib]
        if memory is None and sizes:
            memory = min(sizes) << 20
        profiles = sorted(
            {
                r.resource.removeprefix("nvidia.com/")
                for r in self.resources
                if r.resource.startswith("nvidia.com/mig-") and r.allocatable > 0
            }
        )
        return Offer(memory, tuple(profiles))

    def to_json(self) -> Json:
        return {
            "backend": self.backend,
            "gpus": [g.to_json() for g in self.gpus],
            "resources": [r.to_json() for r in self.resources],
            "mig_profiles": list(self.offer().mig_profiles),
            "warnings": list(self.warnings),
        }


class GpuBackend(abc.ABC):
    """One GPU-sharing stack. Subclasses set the class attributes and implement the methods."""

    name: str
    title: str
    forms: frozenset[SliceForm]
    isolation: Isolation  # the usual isolation; ``isolation_of`` may refine it per slice

    def check(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> None:
        """Raise ``SliceRefused`` when this backend cannot honour ``gpu_slice``."""
        self.render(gpu_slice, offer)

    def resolve(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> GpuSlice:
        """The slice as this backend serves it on ``offer``, in a form that renders the same with
        no offer (e.g. ``1x10Gi`` → ``mig-1g.10gb`` on MIG), so a launch decided on the pool can be
        handed to a provisioner that does not read it. Raises ``SliceRefused``."""
        self.check(gpu_slice, offer)
        return gpu_slice

    @abc.abstractmethod
    def render(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> Rendering:
        """What ``gpu_slice`` becomes in a pod. Raises ``SliceRefused``."""

    @abc.abstractmethod
    def price(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> tuple[Charge, ...]:
        """What ``gpu_slice`` costs, per resource. Raises ``SliceRefused`` (or ``SliceError`` when
        it cannot be priced, e.g. memory with no known per-GPU memory)."""

    @abc.abstractmethod
    def quota_keys(self) -> tuple[str, ...]:
        """Every ResourceQuota key that limits this backend's slices."""

    @abc.abstractmethod
    def read_pool(self, nodes: Iterable[Json], pods: Iterable[Json] | None) -> Pool:
        """The pool from Node objects and the unfinished Pods (None: pods could not be read)."""

    def isolation_of(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> Isolation:
        """The isolation ``gpu_slice`` gets here (the backend's usual one unless refined)."""
        return self.isolation

    def describe(self) -> Json:
        """Name, title, honoured forms and isolation, for ``GET info`` and the picker."""
        return {
            "name": self.name,
            "title": self.title,
            "forms": [f for f in ALL_FORMS if f in self.forms],
            "isolation": self.isolation.to_json(),
            "quota_keys": list(self.quota_keys()),
        }


# ----- shared readers for the backends' pure pool functions --------------------------------------


def quantity_int(value: object) -> int:
    """A resource quantity as a whole number; 0 for anything unreadable (never raises)."""
    if value is None:
        return 0
    try:
        return int(parse_quantity(str(value)))
    except QuantityError:
        return 0


def node_allocatable(node: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((node.get("status") or {}).get("allocatable")) or {}


def node_name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def pod_requests(pod: Mapping[str, Any], resource: str) -> int:
    """What a pod's containers request of ``resource`` (a limit alone counts as the request, as
    the API defaults it for extended resources)."""
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        value = (resources.get("requests") or {}).get(resource)
        if value is None:
            value = (resources.get("limits") or {}).get(resource)
        total += quantity_int(value)
    return total


def node_resources(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]] | None,
    wanted: Sequence[str] | None = None,
    *,
    prefix: str | None = None,
) -> tuple[PoolResource, ...]:
    """Each node's allocatable ``wanted`` resources (or those starting with ``prefix``) and what
    the pods bound to it request of them, sorted by node then resource; zero-capacity entries are
    left out. One pass over the pods."""
    capacity: dict[str, dict[str, int]] = {}
    for node in nodes:
        allocatable = node_allocatable(node)
        names = (
            wanted
            if wanted is not None
            else [k for k in allocatable if prefix is None or k.startswith(prefix)]
        )
        found = {name: quantity_int(allocatable.get(name)) for name in names}
        capacity[node_name(node)] = {k: v for k, v in found.items() if v > 0}
    used: dict[str, dict[str, int]] | None = None
    if pods is not None:
        used = {name: dict.fromkeys(held, 0) for name, held in capacity.items()}
        for pod in pods:
            on = used.get(str((pod.get("spec") or {}).get("nodeName") or ""))
            if on is None:
                continue
            for resource in on:
                on[resource] += pod_requests(pod, resource)
    return tuple(
        PoolResource(name, resource, amount, None if used is None else used[name][resource])
        for name, held in sorted(capacity.items())
        for resource, amount in sorted(held.items())
    )
