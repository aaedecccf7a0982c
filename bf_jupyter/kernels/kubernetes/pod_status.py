"""Reading a kernel pod's status (and its Events) as start-up progress or one-sentence failures. Pure.

The API already says why a pod cannot start — a pull error in the container's waiting state, an
``Unschedulable`` condition, an exit code with the last log lines — so the provisioner reports that
the moment it appears, instead of waiting for a timeout as polling provisioners do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bf_jupyter.bitfusion.run_output import failure_reason

if TYPE_CHECKING:
    from bf_jupyter.kernels.progress import Stage

__all__ = ["PodReading", "event_failure", "event_progress", "one_sentence", "read_pod"]

_PULL_FAILURES = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "RegistryUnavailable",
    }
)
_CREATE_FAILURES = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
_MAX_SENTENCE = 400
_SPACES = re.compile(r"\s+")


def one_sentence(text: str) -> str:
    """``text`` on one line, at most a few hundred characters, ending with a full stop."""
    flat = _SPACES.sub(" ", text).strip()
    if len(flat) > _MAX_SENTENCE:
        flat = flat[: _MAX_SENTENCE - 1].rstrip() + "…"
    return flat if flat.endswith((".", "…", "!", "?")) else flat + "."


@dataclass(frozen=True)
class PodReading:
    """What one version of the pod says about the kernel's start."""

    reached: tuple[tuple[Stage, str], ...]  # progress stages the pod has reached, in order
    failure: str | None  # why the kernel cannot start, one sentence; None while it still may
    ip: str | None  # the pod's address, once it has one
    running: bool  # the kernel container is running
    exit_code: int | None  # the kernel container's exit code once it terminated


def _container_status(pod: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == name:
            return dict(status)
    return {}


def _condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def read_pod(
    pod: Mapping[str, Any],
    *,
    container: str,
    fail_on_unschedulable: bool = True,
    last_log_line: str | None = None,
) -> PodReading:
    """Interpret one version of the kernel pod. ``last_log_line`` names the reason of an exit when
    the status itself carries no message."""
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    image = next(
        (c.get("image", "") for c in spec.get("containers") or [] if c.get("name") == container), ""
    )
    reached: list[tuple[Stage, str]] = []
    node = spec.get("nodeName") or ""
    scheduled = _condition(pod, "PodScheduled")
    if node or scheduled.get("status") == "True":
        reached.append(("scheduled", f"Scheduled on {node}" if node else "Scheduled"))
    container_status = _container_status(pod, container)
    state = container_status.get("state") or {}
    waiting = state.get("waiting") or {}
    running = "running" in state
    terminated = state.get("terminated") or None
    ip = status.get("podIP") or None
    if running:
        reached.append(("started", "Kernel container started"))
    exit_code = int(terminated.get("exitCode", 1)) if terminated else None
    failure = _failure(
        pod,
        image=image,
        waiting=waiting,
        terminated=terminated,
        last_state=container_status.get("lastState") or {},
        scheduled=scheduled,
        fail_on_unschedulable=fail_on_unschedulable,
        last_log_line=last_log_line,
    )
    return PodReading(tuple(reached), failure, ip, running, exit_code)


def _failure(
    pod: Mapping[str, Any],
    *,
    image: str,
    waiting: Mapping[str, Any],
    terminated: Mapping[str, Any] | None,
    last_state: Mapping[str, Any],
    scheduled: Mapping[str, Any],
    fail_on_unschedulable: bool,
    last_log_line: str | None,
) -> str | None:
    waiting_failure = _waiting_failure(image, waiting, last_state)
    if waiting_failure:
        return waiting_failure
    if terminated is not None:
        lines = str(terminated.get("message") or "").strip().splitlines()
        said = failure_reason(lines) if lines else (last_log_line or "no output")
        return one_sentence(
            f"The kernel container exited with code {terminated.get('exitCode', '?')} "
            f"({terminated.get('reason') or 'Error'}) before the kernel was ready: {said}"
        )
    if (
        fail_on_unschedulable
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == "Unschedulable"
    ):
        why = scheduled.get("message") or "Unschedulable"
        return one_sentence(f"No node can run the kernel pod: {why}")
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return one_sentence(
            f"The kernel pod failed ({status.get('reason') or 'Failed'}): "
            f"{status.get('message') or 'no detail'}"
        )
    return None


def _waiting_failure(
    image: str, waiting: Mapping[str, Any], last_state: Mapping[str, Any]
) -> str | None:
    """Why a container that waits will never run: its image, its configuration, or crashes."""
    reason = str(waiting.get("reason") or "")
    message = str(waiting.get("message") or "").strip()
    if reason in _PULL_FAILURES:
        detail = f": {message}" if message else ""
        return one_sentence(f"The kernel image {image} cannot be pulled ({reason}){detail}")
    if reason in _CREATE_FAILURES:
        return one_sentence(
            f"The kernel container cannot be created ({reason}): {message or 'no detail'}"
        )
    if reason == "CrashLoopBackOff":
        previous = last_state.get("terminated") or {}
        said = str(previous.get("message") or message or "").strip().splitlines()
        return one_sentence(
            "The kernel container keeps crashing (CrashLoopBackOff, last exit code "
            f"{previous.get('exitCode', '?')}): {failure_reason(said)}"
        )
    return None


def event_progress(event: Mapping[str, Any]) -> tuple[Stage, str] | None:
    """The progress an Event about the kernel pod shows (image pulling), else None."""
    reason = event.get("reason")
    message = str(event.get("message") or "").strip()
    if reason == "Pulling":
        return "pulling", message or "Pulling the kernel image"
    if reason == "Pulled":
        return "info", message or "Kernel image pulled"
    return None


def event_failure(event: Mapping[str, Any]) -> str | None:
    """Why the kernel pod will never start, from an Event about it, else None: the API server
    refused the ResourceClaim the resourceclaim controller makes from the pod's template (e.g.
    ``exceeded quota`` on ``<class>.deviceclass.resource.k8s.io/devices``), which it would only
    retry for ever."""
    message = str(event.get("message") or "").strip()
    if event.get("reason") == "FailedResourceClaimCreation" and "forbidden" in message:
        return one_sentence(f"Kubernetes refused the kernel's ResourceClaim: {message}")
    return None
