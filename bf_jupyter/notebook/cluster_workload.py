"""Submitted work as Kubernetes objects: the Pod (or Job) ``%bitfusion submit`` creates, and how
pods, jobs and quotas read back for people. Pure: no API calls.

The pod is the seed's ``workload.yaml`` corrected: the slice rendered by a GPU backend (never
computed here; on Bitfusion, ``auto-management/bitfusion: all`` so the webhook wraps the container,
and the ``bitfusion.io/gpu-*`` resource keys); ``command`` as a list (one element per word,
no shell); ``restartPolicy: Never``; unbuffered Python output so logs and metric records stream.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from bf_jupyter.backends import NO_OFFER, GpuBackend, Offer, get_backend
from bf_jupyter.contract import (
    COMPONENT_WORKLOAD,
    ENV_SLICE,
    LABEL_COMPONENT,
    LABEL_NAME,
    LABEL_USER,
    QUOTA_RESOURCE,
    slice_annotation_key,
    units_to_gpus,
)
from bf_jupyter.kubenames import is_dns_label, label_value
from bf_jupyter.quantity import QuantityError, parse_quantity
from bf_jupyter.slice import GpuSlice, SliceError

__all__ = [
    "CONTAINER_NAME",
    "WorkloadRow",
    "build_workload",
    "check_name",
    "format_rows",
    "ownership_problem",
    "pod_outcome",
    "pod_problem",
    "quota_text",
    "row_of",
    "workload_name",
    "workload_selector",
]

CONTAINER_NAME = "main"
APP_NAME = "bf-jupyter"
_PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_CREATE_FAILURES = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def workload_selector(user: str | None) -> str:
    """Label selector of work submitted with the magic (by ``user`` when given)."""
    selector = f"{LABEL_NAME}={APP_NAME},{LABEL_COMPONENT}={COMPONENT_WORKLOAD}"
    return selector if user is None else f"{selector},{LABEL_USER}={label_value(user)}"


def ownership_problem(obj: Mapping[str, Any], user: str) -> str | None:
    """Why ``obj`` (a Pod or Job) is not work that ``%bitfusion submit`` created for ``user``, in
    words that follow its name; None when it is. All three labels must match: our name, the
    workload component and ``bf-jupyter/user``; another tool's "workload" is not ours."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_NAME) != APP_NAME or labels.get(LABEL_COMPONENT) != COMPONENT_WORKLOAD:
        return (
            f"was not submitted with %bitfusion submit (it lacks the labels {LABEL_NAME}={APP_NAME}"
            f" and {LABEL_COMPONENT}={COMPONENT_WORKLOAD})"
        )
    owner = labels.get(LABEL_USER)
    if not owner:
        return f"carries no {LABEL_USER} label, so it cannot be told to be yours"
    if owner != label_value(user):
        return f"was submitted by {owner}, not by you ({label_value(user)})"
    return None


def check_name(name: str) -> str:
    """Raise ``ValueError`` naming the rule when ``name`` is not a valid pod/job name."""
    if not is_dns_label(name):
        raise ValueError(
            f"--name {name!r} is not a valid name: use at most 63 lowercase letters, digits and "
            "'-', starting and ending with a letter or digit"
        )
    return name


def workload_name(command: Sequence[str], suffix: str | None = None) -> str:
    """A name from the script or program run (``train-3kq9x``), unique by a random suffix."""
    script = next((w for w in command if w.endswith(".py")), command[0] if command else "work")
    base = re.sub(r"[^a-z0-9]+", "-", PurePosixPath(script).stem.lower()).strip("-")[:40]
    alphabet = string.ascii_lowercase + string.digits
    suffix = suffix or "".join(secrets.choice(alphabet) for _ in range(5))
    return f"{base or 'work'}-{suffix}"


def build_workload(
    *,
    name: str,
    namespace: str,
    gpu_slice: GpuSlice,
    image: str,
    command: Sequence[str],
    user: str,
    job: bool = False,
    backend: GpuBackend | None = None,
    offer: Offer = NO_OFFER,
) -> dict[str, Any]:
    """The Pod (or batch/v1 Job with ``backoffLimit: 0``) that runs ``command`` on ``gpu_slice``,
    rendered by ``backend`` (default Bitfusion). Raises ``SliceError`` for a slice it cannot
    honour."""
    if not command:
        raise ValueError("a workload needs a command")
    labels = {
        LABEL_NAME: APP_NAME,
        LABEL_COMPONENT: COMPONENT_WORKLOAD,
        LABEL_USER: label_value(user),
    }
    annotations: dict[str, str] = {}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(command),
        "env": [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": ENV_SLICE, "value": gpu_slice.to_text()},
        ],
        "resources": {"limits": {}},
    }
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    rendering = (backend or get_backend("bitfusion")).render(gpu_slice, offer)
    rendering.apply(pod_spec, {"annotations": annotations}, container)
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    if not job:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**metadata, "annotations": annotations},
            "spec": pod_spec,
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def pod_problem(pod: Mapping[str, Any]) -> str | None:
    """Why a pod cannot start (image, container config, scheduling), in one sentence, or None."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    images = {c.get("name"): c.get("image") for c in spec.get("containers") or []}
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason", ""), waiting.get("message", "")
        if reason in _PULL_FAILURES:
            image = images.get(container.get("name")) or container.get("image", "")
            return f"image {image} cannot be pulled ({reason}): {message or 'no details'}"
        if reason in _CREATE_FAILURES:
            return f"container {container.get('name')} cannot start ({reason}): {message or 'no details'}"
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return f"pod cannot be scheduled: {condition.get('message') or 'no node fits'}"
    return None


def pod_outcome(pod: Mapping[str, Any]) -> tuple[str, int | None, str]:
    """(phase, exit code of the main container or None, reason) of a pod."""
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Unknown")
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            code = terminated.get("exitCode")
            return phase, None if code is None else int(code), str(terminated.get("reason") or "")
    return phase, None, str(status.get("reason") or "")


@dataclass(frozen=True)
class WorkloadRow:
    name: str
    kind: str
    status: str
    slice_text: str
    age: str
    image: str


def row_of(obj: Mapping[str, Any], now: datetime | None = None) -> WorkloadRow:
    """How a submitted Pod or Job reads in ``%bitfusion jobs``."""
    kind = str(obj.get("kind") or ("Job" if "template" in (obj.get("spec") or {}) else "Pod"))
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or spec
    pod_annotations = (template.get("metadata") or metadata).get("annotations") or {}
    container = next(iter(pod_spec.get("containers") or [{}]))
    return WorkloadRow(
        name=str(metadata.get("name", "")),
        kind=kind,
        status=_job_status(obj) if kind == "Job" else _pod_status(obj),
        slice_text=_slice_text(container, pod_annotations),
        age=_age(metadata.get("creationTimestamp"), now),
        image=str(container.get("image", "")),
    )


def format_rows(rows: Sequence[WorkloadRow]) -> str:
    header = ("NAME", "KIND", "STATUS", "SLICE", "AGE", "IMAGE")
    table = [header, *((r.name, r.kind, r.status, r.slice_text, r.age, r.image) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in table
    )


def quota_text(quotas: Sequence[Mapping[str, Any]]) -> str:
    """The namespace's GPU quota (``bitfusion.io/gpu`` units) as used/hard, or that there is none."""
    for quota in quotas:
        status = quota.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used") or {}
        for key in (f"requests.{QUOTA_RESOURCE}", QUOTA_RESOURCE):
            if key in hard:
                try:
                    limit = int(parse_quantity(str(hard[key])))
                    spent = int(parse_quantity(str(used.get(key, "0"))))
                except QuantityError:
                    return f"{used.get(key, '?')} of {hard[key]} units (unreadable)"
                name = (quota.get("metadata") or {}).get("name", "")
                return (
                    f"{spent} of {limit} units used ({units_to_gpus(spent):g} of "
                    f"{units_to_gpus(limit):g} GPUs, ResourceQuota {name})"
                )
    return f"no {QUOTA_RESOURCE} quota"


def _pod_status(pod: Mapping[str, Any]) -> str:
    problem_reason = None
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
        problem_reason = waiting.get("reason") or terminated.get("reason") or problem_reason
    phase = str((pod.get("status") or {}).get("phase") or "Pending")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    if problem_reason and phase in {"Pending", "Failed"}:
        return str(problem_reason)
    return phase


def _job_status(job: Mapping[str, Any]) -> str:
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in {"Complete", "Failed"}:
            return str(condition["type"])
    return "Running" if status.get("active") else "Pending"


def _slice_text(container: Mapping[str, Any], annotations: Mapping[str, str]) -> str:
    recorded = annotations.get(slice_annotation_key(str(container.get("name", ""))))
    try:
        if recorded:
            return GpuSlice.parse(recorded).to_text()
        found = GpuSlice.from_container(container, annotations)
    except SliceError:
        return "?"
    return found.to_text() if found is not None else "-"


def _age(timestamp: object, now: datetime | None) -> str:
    if not isinstance(timestamp, str):
        return "?"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = int(((now or datetime.now(timezone.utc)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(0, seconds)}s"
