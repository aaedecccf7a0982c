"""The object store: one resourceVersion sequence (as etcd gives), watch history and subscribers.

Every method runs on the emulator's event loop thread, so a read-check-write inside one method (or
inside one synchronous stretch of a coroutine) is atomic; that is what makes quota admission atomic
under concurrent creates. Objects go in and come out as deep copies.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tests.emulator import errors
from tests.emulator.kinds import ResourceType

if TYPE_CHECKING:
    from tests.emulator.selectors import Predicate


Obj = dict[str, Any]
Key = tuple[str, str, str]  # plural, namespace ("" when cluster-scoped), name
Listener = Callable[[str, ResourceType, Obj], None]

HISTORY = 20_000  # events kept for watches that resume from a resourceVersion


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(eq=False)
class Watcher:
    """One open watch: events matching its filter are queued for the HTTP stream."""

    resource: ResourceType
    namespace: str | None
    predicate: Predicate
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(default_factory=asyncio.Queue)

    def offer(self, event_type: str, resource: ResourceType, obj: Obj) -> None:
        if resource.plural != self.resource.plural or resource.group != self.resource.group:
            return
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return
        if not self.predicate(obj):
            return
        self.queue.put_nowait((event_type, copy.deepcopy(obj)))


class Store:
    def __init__(self, *, history: int = HISTORY) -> None:
        self._objects: dict[Key, Obj] = {}
        self._kinds: dict[str, ResourceType] = {}
        self._revision = 1
        self._history: deque[tuple[int, str, ResourceType, Obj]] = deque(maxlen=history)
        self._watchers: set[Watcher] = set()
        self._listeners: list[Listener] = []

    @property
    def revision(self) -> str:
        return str(self._revision)

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(type, resource, obj)`` synchronously after every change (controllers)."""
        self._listeners.append(listener)

    # ----- reads ----------------------------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str, name: str) -> Obj:
        """A copy of the object; 404 ApiError when there is none."""
        obj = self._objects.get((resource.plural, namespace, name))
        if obj is None:
            raise errors.not_found(resource.plural, name, resource.group)
        return copy.deepcopy(obj)

    def find(self, resource: ResourceType, namespace: str, name: str) -> Obj | None:
        obj = self._objects.get((resource.plural, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self, resource: ResourceType, namespace: str | None, predicate: Predicate | None = None
    ) -> list[Obj]:
        return [
            copy.deepcopy(obj)
            for (plural, ns, _), obj in sorted(self._objects.items())
            if plural == resource.plural
            and (namespace is None or ns == namespace)
            and (predicate is None or predicate(obj))
        ]

    def all_objects(self) -> Iterator[tuple[ResourceType, Obj]]:
        for (plural, _, _), obj in list(self._objects.items()):
            yield self._kinds[plural], obj

    # ----- writes ---------------------------------------------------------------------------------

    def create(self, resource: ResourceType, obj: Obj) -> Obj:
        """Store a new object: uid, creationTimestamp and resourceVersion are set here.
        409 AlreadyExists when the name is taken."""
        meta = obj.setdefault("metadata", {})
        key = (
            resource.plural,
            meta.get("namespace", "") if resource.namespaced else "",
            meta["name"],
        )
        if key in self._objects:
            raise errors.already_exists(resource.plural, meta["name"], resource.group)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if "spec" in obj:
            meta["generation"] = 1
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        self._kinds[resource.plural] = resource
        return self._commit("ADDED", resource, key, obj)

    def update(
        self, resource: ResourceType, obj: Obj, *, expected_version: str | None = None
    ) -> Obj:
        """Replace a stored object. 409 Conflict when ``expected_version`` is stale."""
        meta = obj["metadata"]
        key = (
            resource.plural,
            meta.get("namespace", "") if resource.namespaced else "",
            meta["name"],
        )
        old = self._objects.get(key)
        if old is None:
            raise errors.not_found(resource.plural, meta["name"], resource.group)
        if expected_version and expected_version != old["metadata"]["resourceVersion"]:
            raise errors.conflict(
                resource.plural,
                meta["name"],
                "the object has been modified; please apply your changes to the latest version and try again",
                resource.group,
            )
        for immutable in ("uid", "creationTimestamp"):
            meta[immutable] = old["metadata"][immutable]
        if obj.get("spec") != old.get("spec"):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        return self._commit("MODIFIED", resource, key, obj)

    def remove(self, resource: ResourceType, namespace: str, name: str) -> Obj:
        key = (resource.plural, namespace if resource.namespaced else "", name)
        obj = self._objects.get(key)
        if obj is None:
            raise errors.not_found(resource.plural, name, resource.group)
        del self._objects[key]
        obj = copy.deepcopy(obj)
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        self._publish("DELETED", resource, obj)
        return copy.deepcopy(obj)

    def _commit(self, event_type: str, resource: ResourceType, key: Key, obj: Obj) -> Obj:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        stored = copy.deepcopy(obj)
        self._objects[key] = stored
        self._publish(event_type, resource, stored)
        return copy.deepcopy(stored)

    def _publish(self, event_type: str, resource: ResourceType, obj: Obj) -> None:
        self._history.append((self._revision, event_type, resource, copy.deepcopy(obj)))
        for watcher in list(self._watchers):
            watcher.offer(event_type, resource, obj)
        for listener in self._listeners:
            listener(event_type, resource, obj)

    # ----- watches --------------------------------------------------------------------------------

    def open_watch(
        self, resource: ResourceType, namespace: str | None, predicate: Predicate, since: str | None
    ) -> Watcher:
        """A watcher primed as the API does: no ``since`` (or "0") → ADDED for every current object;
        a resourceVersion → every change after it (410 Gone when history no longer reaches back)."""
        watcher = Watcher(resource, namespace, predicate)
        if since in (None, "", "0"):
            for obj in self.list(resource, namespace, predicate):
                watcher.queue.put_nowait(("ADDED", obj))
        else:
            try:
                start = int(since)
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {since}") from None
            oldest = self._history[0][0] if self._history else self._revision + 1
            if start + 1 < oldest and start < self._revision:
                raise errors.gone(f"too old resource version: {start} ({oldest - 1})")
            for revision, event_type, kind, obj in self._history:
                if revision > start:
                    watcher.offer(event_type, kind, obj)
        self._watchers.add(watcher)
        return watcher

    def close_watch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def close_all_watches(self) -> None:
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)
        self._watchers.clear()
