"""The validating rule: a Bitfusion pod is refused, with every reason at once, when it cannot run.

Pure rules over the pod (well-formed slices that match the units requested, no unconverted keys,
amount and memory within one server and one GPU) plus three facts from the cluster, asked through the
small ``ClusterFacts`` protocol: the namespace's remaining quota, the largest node's allocatable
``bitfusion.io/gpu`` and the token Secret. A fact that cannot be had raises ``FactUnavailable``;
its check is skipped with a warning (the ResourceQuota and the kubelet still enforce).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bf_jupyter.cluster.webhook.config import TokenSource
from bf_jupyter.cluster.webhook.entitlement import (
    CONTAINER_KINDS,
    access_problems,
    entitlement_problems,
)
from bf_jupyter.cluster.webhook.injection import TOKEN_FILES
from bf_jupyter.cluster.webhook.podspec import (
    PodShapeError,
    annotations_of,
    bitfusion_keys,
    container_name,
    containers_of,
    has_slice_keys,
    quota_units_of,
)
from bf_jupyter.cluster.webhook.review import Verdict
from bf_jupyter.contract import (
    ANNOTATION_MANAGEMENT,
    ANNOTATION_STATUS,
    QUOTA_RESOURCE,
    STATUS_INJECTED,
    ManagementMode,
    slice_annotation_key,
)
from bf_jupyter.slice import GpuSlice, SliceError

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.config import WebhookConfig

__all__ = ["ClusterFacts", "FactUnavailable", "QuotaLeft", "validate_ephemeral", "validate_pod"]

_SLICE_ANNOTATION_PREFIX = slice_annotation_key("")


class FactUnavailable(RuntimeError):
    """A cluster fact could not be had (no API, unreachable, forbidden); the message says why."""


@dataclass(frozen=True)
class QuotaLeft:
    """One ResourceQuota's ``requests.bitfusion.io/gpu``: the hard limit and what is used."""

    name: str
    hard: int
    used: int

    @property
    def left(self) -> int:
        return max(0, self.hard - self.used)


class ClusterFacts(Protocol):
    """What validation needs to know about the cluster. Each method may raise ``FactUnavailable``."""

    blocking: bool  # whether calls may wait on the network (then the server runs them off its loop)

    def quotas(self, namespace: str) -> tuple[QuotaLeft, ...]:
        """The namespace's quotas on ``requests.bitfusion.io/gpu`` (empty: none limits it)."""
        ...

    def largest_node_units(self) -> int:
        """The largest allocatable ``bitfusion.io/gpu`` of any node (0: no node advertises it)."""
        ...

    def token_secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The data keys of the token Secret (never the values), or None when it does not exist."""
        ...


def validate_pod(
    pod: Mapping[str, Any], namespace: str, config: WebhookConfig, facts: ClusterFacts
) -> Verdict:
    """Judge a pod being created. Pods that are not marked injected and carry no ``bitfusion.io/*``
    resource are allowed untouched; for the others, a denial lists every problem found."""
    outside = _other_namespace(pod, namespace)
    if outside:
        return Verdict.deny([outside], code=400)
    try:
        annotations = annotations_of(pod)
        injected = annotations.get(ANNOTATION_STATUS) == STATUS_INJECTED
        kinds = {field: containers_of(pod, field) for field in CONTAINER_KINDS}
        containers, init_containers = kinds["containers"], kinds["initContainers"]
        problems, units, entitled = _pod_problems(
            annotations, injected, containers, init_containers, config
        )
        problems += access_problems(pod, kinds, entitled, config)
        if not problems and not injected and not units:
            return Verdict.allow()  # nothing of Bitfusion: no question for the cluster
    except PodShapeError as error:
        return Verdict.deny([f"pod is malformed: {error}"], code=400)
    check = _FactChecks(facts, namespace)
    if units:
        problems += check.capacity(units) + check.quota(units)
    if injected and config.token_source is TokenSource.SECRET:
        # token-service mode: the namespace holds no Secret; the token service decides per pod
        problems += check.token_secret(config.token_secret)
    warnings, skipped = tuple(check.warnings), tuple(check.skipped)
    if problems:
        return Verdict.deny(problems, warnings=warnings, skipped=skipped)
    return Verdict.allow(warnings=warnings, skipped=skipped)


def _other_namespace(pod: Mapping[str, Any], namespace: str) -> str | None:
    """Why the review would make validation ask about a namespace other than the pod's own: the
    request names none, or the pod names another. Only the pod's namespace is ever consulted."""
    if not namespace:
        return "the AdmissionReview names no namespace: a Pod is reviewed in its own namespace"
    metadata = pod.get("metadata")
    own = metadata.get("namespace") if isinstance(metadata, dict) else None
    if own not in (None, "", namespace):
        return (
            f"the pod's metadata.namespace {own!r} is not the request's namespace {namespace!r}: "
            "validation answers only about the namespace of the pod it reviews"
        )
    return None


def validate_ephemeral(pod: Mapping[str, Any], config: WebhookConfig) -> Verdict:
    """Judge ephemeral containers being added to a running pod (``kubectl debug``): refused when one
    mounts the client, the token or the token Secret, or reads the Secret through its environment.
    The rest of the pod was judged at its creation and cannot change here."""
    try:
        ephemeral = {"ephemeralContainers": containers_of(pod, "ephemeralContainers")}
        problems = access_problems(pod, ephemeral, set(), config)
    except PodShapeError as error:
        return Verdict.deny([f"pod is malformed: {error}"], code=400)
    return Verdict.deny(problems) if problems else Verdict.allow()


def _pod_problems(
    annotations: dict[str, str],
    injected: bool,
    containers: list[dict[str, Any]],
    init_containers: list[dict[str, Any]],
    config: WebhookConfig,
) -> tuple[list[str], int, set[str]]:
    """The problems visible in the pod's containers and annotations, the quota units it requests,
    and the regular containers entitled to the client (see ``entitlement``)."""
    problems: list[str] = []
    managed = ManagementMode.from_annotations(annotations) is not ManagementMode.NONE
    names = set()
    entitled: set[str] = set()
    total = 0
    for index, container in enumerate(containers):
        name = container_name(container, index)
        names.add(name)
        if has_slice_keys(container):
            problems.append(_unconverted(name, managed))
            continue
        units = quota_units_of(container)
        recorded = annotations.get(slice_annotation_key(name))
        if recorded is not None:
            problems += _slice_problems(name, recorded, units, config)
            forged = entitlement_problems(
                container, name, recorded, annotations, config, check_units=False
            )
            if not forged and not injected:
                forged = [f"container {name}: the pod lacks {ANNOTATION_STATUS}: {STATUS_INJECTED}"]
            problems += forged
            if not forged:
                entitled.add(name)
        elif units is not None:
            problems.append(
                f"container {name} sets {QUOTA_RESOURCE} directly: only the webhook writes it; "
                "write bitfusion.io/gpu-amount (and gpu-percent or gpu-memory) and "
                f"{ANNOTATION_MANAGEMENT}: all instead"
            )
        total += units or 0
    for index, container in enumerate(init_containers):
        keys = bitfusion_keys(container)
        if keys:
            name = container_name(container, index, "initContainers")
            problems.append(
                f"init container {name} asks for {', '.join(keys)}: only containers in "
                "spec.containers can use Bitfusion GPUs"
            )
    for key in annotations:
        if (
            key.startswith(_SLICE_ANNOTATION_PREFIX)
            and key[len(_SLICE_ANNOTATION_PREFIX) :] not in names
        ):
            problems.append(f"annotation {key} names no container of this pod: remove it")
    return problems, total, entitled


def _unconverted(name: str, managed: bool) -> str:
    if managed:
        return (
            f"container {name} still carries bitfusion.io slice keys: the Bitfusion webhook did not "
            "process the pod (is the bf-webhook Deployment in bf-system running?); create it again"
        )
    return (
        f"container {name} asks for a Bitfusion GPU slice but the pod lacks the annotation "
        f"{ANNOTATION_MANAGEMENT}: all (or injection), so the Bitfusion webhook did not process it"
    )


def _slice_problems(
    name: str, recorded: str, units: int | None, config: WebhookConfig
) -> list[str]:
    where = f"container {name}"
    try:
        gpu_slice = GpuSlice.parse(recorded)
        expected = gpu_slice.quota_units(config.per_gpu_memory_bytes)
    except SliceError as error:
        return [f"{where}: {error}"]
    problems = []
    limit = config.max_gpus_per_server
    if limit is not None and gpu_slice.amount > limit:
        problems.append(
            f"{where} asks for {gpu_slice.amount} GPUs but a Bitfusion server has at most {limit} "
            "(all GPUs of one run come from one server): ask for fewer"
        )
    if units != expected:
        problems.append(
            f"{where} requests {units or 0} units of {QUOTA_RESOURCE} but its slice "
            f"{gpu_slice.to_text()} costs {expected}: let the webhook set the units"
        )
    return problems


class _FactChecks:
    """The checks that need the cluster; collects the warnings of those that had to be skipped."""

    def __init__(self, facts: ClusterFacts, namespace: str) -> None:
        self._facts = facts
        self._namespace = namespace
        self.warnings: list[str] = []
        self.skipped: list[str] = []

    def _skip(self, check: str, error: FactUnavailable) -> list[str]:
        self.skipped.append(check)
        self.warnings.append(f"Bitfusion {check} check skipped: {error}")
        return []

    def capacity(self, units: int) -> list[str]:
        try:
            largest = self._facts.largest_node_units()
        except FactUnavailable as error:
            return self._skip("capacity", error)
        if largest == 0:
            return [
                f"no node advertises {QUOTA_RESOURCE}: is the bf-device-plugin DaemonSet in "
                "bf-system running?"
            ]
        if units > largest:
            return [
                f"pod needs {units} units of {QUOTA_RESOURCE} but the largest node offers {largest}: "
                "ask for a smaller slice"
            ]
        return []

    def quota(self, units: int) -> list[str]:
        try:
            quotas = self._facts.quotas(self._namespace)
        except FactUnavailable as error:
            return self._skip("quota", error)
        return [
            f"pod needs {units} units, namespace {self._namespace} has {q.left} of {q.hard} left "
            f"(ResourceQuota {q.name} on requests.{QUOTA_RESOURCE}): ask for a smaller slice"
            for q in quotas
            if units > q.left
        ]

    def token_secret(self, name: str) -> list[str]:
        try:
            keys = self._facts.token_secret_keys(self._namespace, name)
        except FactUnavailable as error:
            return self._skip("token Secret", error)
        fix = (
            f"create it from the Bitfusion token files: kubectl -n {self._namespace} create secret "
            f"generic {name} --from-file=ca.crt --from-file=client.yaml --from-file=servers.conf"
        )
        if keys is None:
            return [
                f"namespace {self._namespace} has no Secret {name} with the Bitfusion token: {fix}"
            ]
        missing = [key for key in TOKEN_FILES if key not in keys]
        if missing:
            return [
                f"Secret {name} in namespace {self._namespace} lacks {', '.join(missing)}: {fix}"
            ]
        return []
