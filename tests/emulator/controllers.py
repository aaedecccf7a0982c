"""The controllers of kube-controller-manager that tests lean on: namespace lifecycle (a deleted
namespace is emptied, then removed) and the garbage collector (objects whose owner is gone are
deleted, background propagation)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tests.emulator import errors
from tests.emulator.kinds import ResourceType, resource_for_kind

if TYPE_CHECKING:
    from tests.emulator.registry import Registry


Obj = dict[str, Any]
_log = logging.getLogger(__name__)


class Controllers:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self._namespaces = resource_for_kind("Namespace")
        self._tasks: set[asyncio.Task[None]] = set()
        self.store.subscribe(self._on_change)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_change(self, event_type: str, resource: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        terminating = (obj.get("status") or {}).get("phase") == "Terminating"
        if resource.kind == "Namespace" and event_type == "MODIFIED" and terminating:
            self._spawn(self._finish_namespace(meta["name"]))
        if event_type == "DELETED":
            self._spawn(self._collect_dependents(meta["uid"]))
            namespace = meta.get("namespace")
            if namespace:
                self._spawn(self._finish_namespace(namespace))

    async def _finish_namespace(self, namespace: str) -> None:
        """Delete what is left in a terminating namespace; remove it once it is empty."""
        found = self.store.find(self._namespaces, "", namespace)
        if found is None or (found.get("status") or {}).get("phase") != "Terminating":
            return
        left = [
            (r, o)
            for r, o in list(self.store.all_objects())
            if r.namespaced and o["metadata"].get("namespace") == namespace
        ]
        for resource, obj in left:
            if not obj["metadata"].get("deletionTimestamp"):
                await self._delete_quietly(resource, namespace, obj["metadata"]["name"])
        if left:
            return  # the last DELETED event in the namespace brings us back
        if self.store.find(self._namespaces, "", namespace) is not None:
            self.store.remove(self._namespaces, "", namespace)

    async def _collect_dependents(self, owner_uid: str) -> None:
        for resource, obj in list(self.store.all_objects()):
            refs = obj["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in refs):
                living = [
                    ref
                    for ref in refs
                    if ref.get("uid") != owner_uid and self._owner_exists(ref, obj)
                ]
                if living:
                    continue  # another owner still holds it
                await self._delete_quietly(
                    resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
                )

    def _owner_exists(self, ref: Obj, dependent: Obj) -> bool:
        try:
            resource = resource_for_kind(ref.get("kind", ""))
        except KeyError:
            return False
        namespace = dependent["metadata"].get("namespace", "") if resource.namespaced else ""
        found = self.store.find(resource, namespace, ref.get("name", ""))
        return found is not None and found["metadata"]["uid"] == ref.get("uid")

    async def _delete_quietly(self, resource: ResourceType, namespace: str, name: str) -> None:
        try:
            await self.registry.delete(resource, namespace, name)
        except errors.ApiError as error:
            if error.code != 404:
                _log.warning(
                    "controller could not delete %s %s/%s: %s",
                    resource.plural,
                    namespace,
                    name,
                    error,
                )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
