"""The API's verbs with kube-apiserver's semantics, shared by the HTTP layer and the controllers.

Create runs, in kube-apiserver's order: namespace lifecycle → defaulting → mutating admission →
name generation + validation → validating admission → ResourceQuota + storage. The last step is one
synchronous stretch on the event loop, so quota checks are atomic under concurrent creates.
Pods bound to a node are deleted gracefully (deletionTimestamp first, removed once the kubelet has
stopped them); namespaces go Terminating and are emptied by the namespace controller.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from tests.emulator import errors
from tests.emulator.defaults import default_object, validate, validate_pod_update
from tests.emulator.kinds import ResourceType, resource_for_kind
from tests.emulator.patches import apply_patch
from tests.emulator.store import Store, now_rfc3339

Obj = dict[str, Any]

ADMIN = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
_STATUS_SPLIT = {"Pod", "Node", "Namespace", "ResourceQuota", "Job"}  # spec/status split types


@dataclass
class AdmissionAttributes:
    """What an admission step is told about one request (AdmissionReview's request, in short)."""

    operation: str  # CREATE, UPDATE, DELETE
    resource: ResourceType
    subresource: str
    namespace: str
    name: str
    obj: Obj | None
    old_obj: Obj | None
    dry_run: bool
    user: Obj = field(default_factory=lambda: dict(ADMIN))
    options: Obj = field(default_factory=dict)


class Admission(Protocol):
    async def mutate(self, attrs: AdmissionAttributes) -> None:
        """May change ``attrs.obj`` in place; raises ApiError to deny."""

    async def validate(self, attrs: AdmissionAttributes) -> None:
        """Raises ApiError to deny."""


class QuotaCheck(Protocol):
    def admit(self, attrs: AdmissionAttributes) -> None:
        """Synchronous: raises the 403 "exceeded quota" ApiError."""


def _generated(prefix: str) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the API's own: no vowels, no 0/1/3
    return prefix + "".join(secrets.choice(alphabet) for _ in range(5))


class Registry:
    def __init__(
        self, store: Store, *, admission: list[Admission], quota: QuotaCheck | None
    ) -> None:
        self.store = store
        self.admission = admission
        self.quota = quota

    # ----- create ---------------------------------------------------------------------------------

    async def create(
        self,
        resource: ResourceType,
        namespace: str,
        body: Obj,
        *,
        dry_run: bool = False,
        user: Obj | None = None,
    ) -> Obj:
        obj = self._check_body(resource, namespace, body)
        if resource.namespaced:
            self._check_namespace_open(namespace, resource, obj)
        default_object(resource, obj)
        attrs = AdmissionAttributes(
            "CREATE",
            resource,
            "",
            namespace,
            obj["metadata"].get("name", ""),
            obj,
            None,
            dry_run,
            user or dict(ADMIN),
            {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        )
        for step in self.admission:
            await step.mutate(attrs)
        obj = attrs.obj or obj
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = _generated(meta["generateName"])
        attrs.name = meta.get("name", "")
        validate(resource, obj)
        for step in self.admission:
            await step.validate(attrs)
        # From here to the store, nothing awaits: quota and storage are one atomic step.
        if resource.namespaced:
            self._check_namespace_open(namespace, resource, obj)
        if self.quota is not None:
            self.quota.admit(attrs)
        if dry_run:
            return obj
        return self.store.create(resource, obj)

    def _check_body(self, resource: ResourceType, namespace: str, body: Obj) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        if obj.get("kind") not in (None, resource.kind):
            raise errors.bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) does not match the expected API version ({resource.api_version})"
                if obj.get("apiVersion") != resource.api_version
                else f'{obj.get("kind")} in version "{resource.version}" cannot be handled as a {resource.kind}'
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        for server_owned in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
        ):
            meta.pop(server_owned, None)
        if resource.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def _check_namespace_open(self, namespace: str, resource: ResourceType, obj: Obj) -> None:
        found = self.store.find(resource_for_kind("Namespace"), "", namespace)
        if found is None:
            raise errors.not_found("namespaces", namespace)
        if (found.get("status") or {}).get("phase") == "Terminating":
            raise errors.forbidden(
                resource.plural,
                obj["metadata"].get("name") or obj["metadata"].get("generateName", ""),
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    # ----- update and patch -------------------------------------------------------------------------

    async def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Obj,
        *,
        subresource: str = "",
        dry_run: bool = False,
        user: Obj | None = None,
        check_version: bool = True,
    ) -> Obj:
        """PUT semantics: the main resource keeps its stored status, ``/status`` keeps the rest."""
        old = self.store.get(resource, namespace, name)
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        if resource.namespaced:
            meta["namespace"] = namespace
        expected = str(meta.get("resourceVersion") or "") if check_version else ""
        if resource.kind in _STATUS_SPLIT:
            if subresource == "status":
                merged = copy.deepcopy(old)
                merged["status"] = new.get("status") or {}
                new = merged
            else:
                new["status"] = copy.deepcopy(old.get("status") or {})
        for kept in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if kept in old["metadata"]:
                meta[kept] = old["metadata"][kept]
            else:
                meta.pop(kept, None)
        if resource.kind == "Pod" and subresource == "":
            validate_pod_update(old, new)
        attrs = AdmissionAttributes(
            "UPDATE",
            resource,
            subresource,
            namespace,
            name,
            new,
            old,
            dry_run,
            user or dict(ADMIN),
            {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
        )
        for step in self.admission:
            await step.mutate(attrs)
        for step in self.admission:
            await step.validate(attrs)
        if dry_run:
            return new
        return self._store_update(resource, new, expected)

    async def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str = "",
        dry_run: bool = False,
        user: Obj | None = None,
    ) -> Obj:
        current = self.store.get(resource, namespace, name)
        patched = apply_patch(current, patch, content_type)
        return await self.update(
            resource, namespace, name, patched, subresource=subresource, dry_run=dry_run, user=user
        )

    def _store_update(self, resource: ResourceType, obj: Obj, expected: str) -> Obj:
        meta = obj["metadata"]
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and resource.kind not in {"Pod", "Namespace"}
        ):
            return self.store.remove(resource, meta.get("namespace", ""), meta["name"])
        return self.store.update(resource, obj, expected_version=expected or None)

    def update_status_now(self, resource: ResourceType, obj: Obj) -> Obj:
        """For controllers: write an object's status without admission (they own it)."""
        return self.store.update(resource, obj)

    # ----- delete ---------------------------------------------------------------------------------

    async def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        *,
        grace_period: int | None = None,
        propagation: str = "Background",
        dry_run: bool = False,
        user: Obj | None = None,
    ) -> Obj:
        """Returns the object (pods, namespaces) or a Success Status, as the API does."""
        obj = self.store.get(resource, namespace, name)
        attrs = AdmissionAttributes(
            "DELETE",
            resource,
            "",
            namespace,
            name,
            None,
            obj,
            dry_run,
            user or dict(ADMIN),
            {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"},
        )
        for step in self.admission:
            await step.validate(attrs)
        if dry_run:
            return obj
        if propagation == "Orphan":
            self._orphan_dependents(obj["metadata"]["uid"])
        if resource.kind == "Pod":
            return self._delete_pod(obj, grace_period)
        if resource.kind == "Namespace":
            return self._terminate_namespace(obj)
        meta = obj["metadata"]
        if meta.get("finalizers"):
            meta.setdefault("deletionTimestamp", now_rfc3339())
            meta.setdefault("deletionGracePeriodSeconds", 0)
            return self.store.update(resource, obj)
        gone = self.store.remove(resource, namespace, name)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": name,
                "kind": resource.plural,
                "group": resource.group,
                "uid": gone["metadata"]["uid"],
            },
        }

    def _delete_pod(self, pod: Obj, grace_period: int | None) -> Obj:
        pods = resource_for_kind("Pod")
        meta, spec = pod["metadata"], pod.get("spec") or {}
        grace = (
            grace_period
            if grace_period is not None
            else int(spec.get("terminationGracePeriodSeconds", 30))
        )
        terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if not spec.get("nodeName") or terminal or grace <= 0:
            return self.store.remove(pods, meta["namespace"], meta["name"])
        current = meta.get("deletionGracePeriodSeconds")
        if current is not None and current <= grace:
            return pod  # already terminating at least as fast
        meta["deletionGracePeriodSeconds"] = grace
        deadline = datetime.now(timezone.utc) + timedelta(seconds=grace)
        meta["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.store.update(pods, pod)

    def bind(self, namespace: str, name: str, node: str) -> Obj:
        """The ``pods/binding`` subresource: set spec.nodeName once (409 when already bound)."""
        pods = resource_for_kind("Pod")
        pod = self.store.get(pods, namespace, name)
        spec = pod.setdefault("spec", {})
        if spec.get("nodeName"):
            raise errors.conflict(
                "pods", name, f'pod {name} is already assigned to node "{spec["nodeName"]}"'
            )
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict(
                "pods", name, "pod is being deleted, cannot be assigned to a host"
            )
        spec["nodeName"] = node
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            }
        )
        status["conditions"] = conditions
        return self.store.update(pods, pod)

    def finish_pod_deletion(self, namespace: str, name: str) -> None:
        """The kubelet's final delete, once a terminating pod's containers have stopped."""
        pods = resource_for_kind("Pod")
        if self.store.find(pods, namespace, name) is not None:
            self.store.remove(pods, namespace, name)

    def _terminate_namespace(self, namespace_obj: Obj) -> Obj:
        namespaces = resource_for_kind("Namespace")
        if (namespace_obj.get("status") or {}).get("phase") == "Terminating":
            return namespace_obj
        namespace_obj["metadata"]["deletionTimestamp"] = now_rfc3339()
        namespace_obj.setdefault("status", {})["phase"] = "Terminating"
        return self.store.update(namespaces, namespace_obj)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for kind, obj in list(self.store.all_objects()):
            refs = obj["metadata"].get("ownerReferences") or []
            kept = [ref for ref in refs if ref.get("uid") != owner_uid]
            if len(kept) != len(refs):
                changed = copy.deepcopy(obj)
                changed["metadata"]["ownerReferences"] = kept
                self.store.update(kind, changed)

    # ----- reads ----------------------------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str, name: str) -> Obj:
        return self.store.get(resource, namespace, name)

    def list(self, resource: ResourceType, namespace: str | None, predicate: Any) -> Obj:
        items = self.store.list(resource, namespace, predicate)
        for item in items:  # list items carry no kind/apiVersion in the real API
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": self.store.revision},
            "items": items,
        }
