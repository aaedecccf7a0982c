"""core/v1 Events as the scheduler and kubelet record them (aggregated: a repeat bumps ``count``)."""

from __future__ import annotations

import secrets
from typing import Any

from tests.emulator.kinds import resource_for_kind
from tests.emulator.store import Store, now_rfc3339

Obj = dict[str, Any]


class EventRecorder:
    def __init__(self, store: Store, component: str, host: str = "") -> None:
        self.store = store
        self.component = component
        self.host = host
        self._events = resource_for_kind("Event")

    def record(
        self, obj: Obj, event_type: str, reason: str, message: str, *, field_path: str = ""
    ) -> None:
        """Record (or count again) an event about ``obj``; never raises for a vanished namespace."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        involved = {
            "kind": obj.get("kind", ""),
            "namespace": meta.get("namespace", ""),
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "apiVersion": obj.get("apiVersion", "v1"),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        for existing in self.store.list(self._events, namespace):
            same = existing.get("involvedObject") or {}
            if (
                same.get("uid") == involved["uid"]
                and same.get("fieldPath", "") == field_path
                and existing.get("reason") == reason
                and existing.get("message") == message
            ):
                existing["count"] = int(existing.get("count", 1)) + 1
                existing["lastTimestamp"] = now_rfc3339()
                self.store.update(self._events, existing)
                return
        home = self.store.find(resource_for_kind("Namespace"), "", namespace)
        if home is None or (home.get("status") or {}).get("phase") == "Terminating":
            return  # the API refuses new content in a terminating namespace
        now = now_rfc3339()
        source = {"component": self.component}
        if self.host:
            source["host"] = self.host
        self.store.create(
            self._events,
            {
                "metadata": {
                    "name": f"{meta['name']}.{secrets.token_hex(8)}",
                    "namespace": namespace,
                },
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": event_type,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": source,
                "reportingComponent": self.component,
                "reportingInstance": self.host,
            },
        )
