"""The resource types the emulated API serves, and the discovery documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.emulator.errors import ApiError

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    kind: str
    plural: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    # field selectors the real API accepts for this type (metadata.name/namespace always work)
    field_labels: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "Pod",
        "pods",
        "",
        "v1",
        True,
        ("status", "log", "binding"),
        ("po",),
        (
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
    ),
    ResourceType(
        "Namespace",
        "namespaces",
        "",
        "v1",
        False,
        ("status", "finalize"),
        ("ns",),
        ("status.phase",),
    ),
    ResourceType("Secret", "secrets", "", "v1", True, (), (), ("type",)),
    ResourceType("ConfigMap", "configmaps", "", "v1", True, (), ("cm",)),
    ResourceType(
        "Event",
        "events",
        "",
        "v1",
        True,
        (),
        ("ev",),
        (
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ),
    ),
    ResourceType("Node", "nodes", "", "v1", False, ("status",), ("no",), ("spec.unschedulable",)),
    ResourceType("ResourceQuota", "resourcequotas", "", "v1", True, ("status",), ("quota",)),
    ResourceType("ServiceAccount", "serviceaccounts", "", "v1", True, (), ("sa",)),
    ResourceType("Job", "jobs", "batch", "v1", True, ("status",), (), ("status.successful",)),
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {r.kind: r for r in RESOURCES}


def resource_for_path(group: str, version: str, plural: str) -> ResourceType:
    """The type served at ``/api[s]/GROUP/VERSION/PLURAL``; 404 like the API when there is none."""
    try:
        return _BY_PATH[(group, version, plural)]
    except KeyError:
        raise ApiError(
            404, "NotFound", "the server could not find the requested resource"
        ) from None


def resource_for_kind(kind: str) -> ResourceType:
    return _BY_KIND[kind]


def version_document() -> Obj:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-bf-emulator",
        "platform": "linux/amd64",
        "goVersion": "go1.23",
        "compiler": "gc",
    }


def core_versions() -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def group_list() -> Obj:
    groups: dict[str, set[str]] = {}
    for resource in RESOURCES:
        if resource.group:
            groups.setdefault(resource.group, set()).add(resource.version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": name,
                "versions": [
                    {"groupVersion": f"{name}/{v}", "version": v} for v in sorted(versions)
                ],
                "preferredVersion": {
                    "groupVersion": f"{name}/{max(versions)}",
                    "version": max(versions),
                },
            }
            for name, versions in sorted(groups.items())
        ],
    }


def resource_list(group: str, version: str) -> Obj:
    """The ``APIResourceList`` at ``/api/v1`` or ``/apis/GROUP/VERSION`` (what kubectl discovers)."""
    served = [r for r in RESOURCES if r.group == group and r.version == version]
    if not served:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    entries: list[Obj] = []
    for r in served:
        entries.append(
            {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": [
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ],
                "shortNames": list(r.short_names),
            }
        )
        for sub in r.subresources:
            verbs = {"log": ["get"], "binding": ["create"], "finalize": ["update"]}.get(
                sub, ["get", "patch", "update"]
            )
            entries.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": verbs,
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }
