"""What the API server does to an object before admission sees it, and the checks after:
defaulting (pods get the fields the real API fills in) and the validation the tests can meet
(names, containers, extended resources, immutable pod spec)."""

from __future__ import annotations

import base64
import copy
import re
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from bf_jupyter.quantity import QuantityError, parse_quantity
from tests.emulator import errors

if TYPE_CHECKING:
    from tests.emulator.kinds import ResourceType


Obj = dict[str, Any]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NATIVE_RESOURCES = {"cpu", "memory", "ephemeral-storage", "pods"}
_MUTABLE_POD_SPEC = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def quantity_text(value: Any) -> str:
    """Quantities come back from the API as strings, whatever the client sent."""
    if isinstance(value, float):
        fraction = Fraction(value).limit_denominator(1000)
        return str(fraction.numerator) if fraction.denominator == 1 else f"{int(fraction * 1000)}m"
    return str(value)


def is_extended_resource(name: str) -> bool:
    return "/" in name and not name.startswith(("kubernetes.io/", "requests.", "limits."))


def _default_container(container: Obj) -> None:
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1].partition(":")[2] if ":" in image.rsplit("/", 1)[-1] else ""
    container.setdefault("imagePullPolicy", "Always" if tag in ("", "latest") else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    resources = container.setdefault("resources", {})
    for section in ("limits", "requests"):
        if section in resources and isinstance(resources[section], dict):
            resources[section] = {k: quantity_text(v) for k, v in resources[section].items()}
    limits = resources.get("limits") or {}
    if limits:  # the API copies limits into requests that were not given
        requests = resources.setdefault("requests", {})
        for name, value in limits.items():
            requests.setdefault(name, value)


def default_pod(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if isinstance(container, dict):
            _default_container(container)
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", "BestEffort")


def default_object(resource: ResourceType, obj: Obj) -> None:
    """Fill the defaults the real API fills for ``resource`` (in place)."""
    if resource.kind == "Pod":
        default_pod(obj)
    elif resource.kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {})["phase"] = "Active"
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"][
            "name"
        ]
    elif resource.kind == "Secret":
        obj.setdefault("type", "Opaque")
        for key, value in (obj.pop("stringData", None) or {}).items():  # write-only convenience
            obj.setdefault("data", {})[key] = base64.b64encode(str(value).encode()).decode()
    elif resource.kind == "ResourceQuota":
        hard = {k: quantity_text(v) for k, v in ((obj.get("spec") or {}).get("hard") or {}).items()}
        obj.setdefault("spec", {})["hard"] = hard
    elif resource.kind == "Job":
        from tests.emulator.jobs import default_job

        default_job(obj)
    elif resource.kind == "Event":
        obj.setdefault("type", "Normal")
        obj.setdefault("count", 1)


def validate(resource: ResourceType, obj: Obj) -> None:
    """422 Invalid listing every cause, like the API (only the rules tests can meet)."""
    name = str(obj["metadata"].get("name") or "")
    causes = _name_causes(resource, name)
    if resource.kind == "Pod":
        causes.extend(_pod_causes(obj))
    if causes:
        raise errors.invalid(resource.kind, name, causes)


def _name_causes(resource: ResourceType, name: str) -> list[tuple[str, str]]:
    pattern = _DNS_LABEL if resource.kind == "Namespace" else _DNS_SUBDOMAIN
    if not name:
        return [("metadata.name", "Required value: name or generateName is required")]
    if len(name) > 253 or not pattern.match(name):
        return [
            (
                "metadata.name",
                f"Invalid value: \"{name}\": a lowercase RFC 1123 name must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            )
        ]
    return []


def _resource_causes(path: str, container: Obj) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    for section, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            try:
                amount = parse_quantity(value)
            except QuantityError:
                causes.append(
                    (
                        f"{path}.resources.{section}[{name}]",
                        f'Invalid value: "{value}": quantities must match the regular expression',
                    )
                )
                continue
            if amount < 0:
                causes.append(
                    (
                        f"{path}.resources.{section}[{name}]",
                        f'Invalid value: "{value}": must be greater than or equal to 0',
                    )
                )
            if is_extended_resource(name) and amount.denominator != 1:
                causes.append(
                    (
                        f"{path}.resources.{section}[{name}]",
                        f'Invalid value: "{value}": must be an integer',
                    )
                )
    for name, value in requests.items():
        if not is_extended_resource(name) or name in _NATIVE_RESOURCES:
            continue
        if name not in limits:
            causes.append(
                (
                    f"{path}.resources.limits",
                    "Required value: Limit must be set for non overcommitable resources",
                )
            )
        elif _safe(value) != _safe(limits[name]):
            causes.append(
                (
                    f"{path}.resources.requests",
                    f'Invalid value: "{value}": must be equal to {name} limit of {limits[name]}',
                )
            )
    return causes


def _safe(value: Any) -> Fraction | None:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def _pod_causes(pod: Obj) -> list[tuple[str, str]]:
    spec = pod.get("spec") or {}
    causes: list[tuple[str, str]] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append(("spec.containers", "Required value"))
    seen: set[str] = set()
    for section in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(section) or []):
            path = f"spec.{section}[{index}]"
            if not isinstance(container, dict):
                causes.append((path, "Invalid value: must be an object"))
                continue
            cname = str(container.get("name") or "")
            if not cname:
                causes.append((f"{path}.name", "Required value"))
            elif cname in seen:
                causes.append((f"{path}.name", f'Duplicate value: "{cname}"'))
            seen.add(cname)
            if not container.get("image"):
                causes.append((f"{path}.image", "Required value"))
            causes.extend(_resource_causes(path, container))
    if spec.get("restartPolicy") not in ("Always", "OnFailure", "Never"):
        causes.append(
            (
                "spec.restartPolicy",
                f'Unsupported value: "{spec.get("restartPolicy")}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    return causes


def validate_pod_update(old: Obj, new: Obj) -> None:
    """Only images, activeDeadlineSeconds and tolerations may change in a pod's spec."""

    def comparable(pod: Obj) -> Obj:
        spec = copy.deepcopy(pod.get("spec") or {})
        for section in ("containers", "initContainers"):
            for container in spec.get(section) or []:
                if isinstance(container, dict):
                    container.pop("image", None)
        for loose in ("activeDeadlineSeconds", "tolerations"):
            spec.pop(loose, None)
        return spec

    if comparable(old) != comparable(new):
        raise errors.invalid(
            "Pod", new["metadata"]["name"], [("spec", f"Forbidden: {_MUTABLE_POD_SPEC}")]
        )
