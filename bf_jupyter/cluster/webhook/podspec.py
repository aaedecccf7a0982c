"""Defensive reads of a pod in its JSON shape, for the admission rules.

The API server sends well-formed pods, but the webhook answers whatever arrives: every accessor
either returns the expected shape or raises ``PodShapeError`` naming the field, so a rule can turn it
into one clear denial instead of a crash. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bf_jupyter.contract import QUOTA_RESOURCE, SLICE_RESOURCE_KEYS
from bf_jupyter.quantity import QuantityError, parse_quantity

__all__ = [
    "BITFUSION_PREFIX",
    "PodShapeError",
    "annotations_of",
    "bitfusion_keys",
    "container_name",
    "containers_of",
    "has_slice_keys",
    "quota_units_of",
    "resource_section",
]

BITFUSION_PREFIX = "bitfusion.io/"
_SECTIONS = ("requests", "limits")


class PodShapeError(ValueError):
    """A field of the pod does not have the shape the Pod API gives it."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        super().__init__(f"{field} {shown} is not {expected}")


def annotations_of(pod: Mapping[str, Any]) -> dict[str, str]:
    """The pod's annotations; non-text values (never sent by the API server) are dropped."""
    metadata = pod.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)}


def containers_of(pod: Mapping[str, Any], field: str = "containers") -> list[dict[str, Any]]:
    """``spec.<field>`` as a list of container mappings (empty when absent)."""
    spec = pod.get("spec")
    if spec is None:
        return []
    if not isinstance(spec, dict):
        raise PodShapeError("spec", spec, "a mapping")
    containers = spec.get(field)
    if containers is None:
        return []
    if not isinstance(containers, list):
        raise PodShapeError(f"spec.{field}", containers, "a list of containers")
    for index, container in enumerate(containers):
        if not isinstance(container, dict):
            raise PodShapeError(f"spec.{field}[{index}]", container, "a container mapping")
    return containers


def container_name(container: Mapping[str, Any], index: int, field: str = "containers") -> str:
    name = container.get("name")
    if not isinstance(name, str) or not name:
        raise PodShapeError(f"spec.{field}[{index}].name", name, "a container name")
    return name


def resource_section(container: Mapping[str, Any], section: str) -> Mapping[str, Any]:
    """``resources.<section>`` (requests or limits) as a mapping (empty when absent)."""
    resources = container.get("resources")
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise PodShapeError("resources", resources, "a mapping of requests and limits")
    values = resources.get(section)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise PodShapeError(f"resources.{section}", values, "a mapping of resource amounts")
    return values


def has_slice_keys(container: Mapping[str, Any]) -> bool:
    """Whether the container still carries user-facing slice keys (mutation has not converted it)."""
    return any(
        key in resource_section(container, section)
        for section in _SECTIONS
        for key in SLICE_RESOURCE_KEYS
    )


def bitfusion_keys(container: Mapping[str, Any]) -> list[str]:
    """Every ``bitfusion.io/*`` resource key of the container, in requests or limits."""
    return sorted(
        {
            key
            for section in _SECTIONS
            for key in resource_section(container, section)
            if isinstance(key, str) and key.startswith(BITFUSION_PREFIX)
        }
    )


def quota_units_of(container: Mapping[str, Any]) -> int | None:
    """The ``bitfusion.io/gpu`` units the container requests (a limit alone counts as the request,
    as Kubernetes defaults it), or None when it requests none. Raises ``PodShapeError`` when the
    value is not a whole number or requests and limits differ (extended resources cannot overcommit).
    """
    found: dict[str, int] = {}
    for section in _SECTIONS:
        values = resource_section(container, section)
        if QUOTA_RESOURCE in values:
            found[section] = _whole_number(
                f"resources.{section}.{QUOTA_RESOURCE}", values[QUOTA_RESOURCE]
            )
    if not found:
        return None
    if len(set(found.values())) > 1:
        raise PodShapeError(
            f"resources.requests.{QUOTA_RESOURCE}",
            found["requests"],
            f"equal to its limit {found['limits']}",
        )
    return next(iter(found.values()))


def _whole_number(field: str, value: object) -> int:
    """A whole, non-negative number of units, read as the quantity it is: the API server rewrites
    ``1000`` as ``1k`` (and would keep ``1000m`` as ``1``), so text is compared by value."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and len(value) <= 32:
        try:
            number = parse_quantity(value)
        except QuantityError:
            number = None
        if number is not None and number >= 0 and number.denominator == 1 and number < 10**18:
            return int(number)
    raise PodShapeError(field, value, "a whole number of units")
