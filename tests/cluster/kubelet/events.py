"""core/v1 Events as a kubelet records them: ``source.component=kubelet``, ``source.host=<node>``,
aggregated (a repeat of the same reason and message about the same object bumps ``count``).

``record`` never blocks and never raises: events go out in order from one writer task, and one the
API refuses (a namespace being deleted, a pod already gone) is dropped, as a kubelet drops it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable
from tests.cluster.kubelet.pod_status import now_rfc3339

if TYPE_CHECKING:
    from tests.cluster.kubelet.node_api import NodeApi

Obj = dict[str, Any]
_log = logging.getLogger(__name__)
_Key = tuple[str, str, str, str, str]  # namespace, uid, fieldPath, reason, message


class EventRecorder:
    def __init__(self, api: NodeApi, component: str = "kubelet") -> None:
        self.api = api
        self.component = component
        self.host = api.node_name
        self._queue: asyncio.Queue[tuple[Obj, str, str, str, str] | None] = asyncio.Queue()
        self._seen: dict[_Key, tuple[str, int]] = {}  # → (event name, count)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._write_all())

    async def stop(self) -> None:
        """Send what is queued, then stop."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    def record(
        self, obj: Obj, event_type: str, reason: str, message: str, *, field_path: str = ""
    ) -> None:
        self._queue.put_nowait((obj, event_type, reason, message, field_path))

    async def _write_all(self) -> None:
        while (item := await self._queue.get()) is not None:
            try:
                await self._write(*item)
            except (KubeApiError, KubeUnavailable) as error:
                _log.debug("event %s dropped: %s", item[2], error)

    async def _write(
        self, obj: Obj, event_type: str, reason: str, message: str, field_path: str
    ) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        key = (namespace, meta.get("uid", ""), field_path, reason, message)
        now = now_rfc3339()
        if key in self._seen:
            name, count = self._seen[key]
            self._seen[key] = (name, count + 1)
            await self.api.call(
                self.api.api.patch,
                "Event",
                name,
                {"count": count + 1, "lastTimestamp": now},
                namespace,
            )
            return
        involved = {
            "kind": obj.get("kind", "Pod"),
            "namespace": meta.get("namespace", ""),
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "apiVersion": obj.get("apiVersion", "v1"),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        name = f"{meta['name']}.{secrets.token_hex(8)}"
        self._seen[key] = (name, 1)
        event = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": event_type,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        await self.api.call(self.api.api.create, "Event", event, namespace)

    def forget(self, uid: str) -> None:
        """Drop the aggregation state of a pod that is gone."""
        for key in [k for k in self._seen if k[1] == uid]:
            del self._seen[key]
