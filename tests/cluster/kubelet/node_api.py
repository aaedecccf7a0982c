"""The process-kubelet's calls to the API server, made as its node (``system:node:<name>``).

Every call goes through ``bf_jupyter.kubeapi.KubeApi`` on the node's own kubeconfig, so the Node
authorizer and the NodeRestriction admission plugin judge it as they judge a real kubelet: it may
read only the Secrets and ConfigMaps of pods bound to it, write only their status, delete only them.
``KubeApi`` blocks; this module runs its calls on a thread pool of its own and gives asyncio code
awaitables and an endless pod watch (list, then watch, again from a fresh list after ``410 Gone``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from bf_jupyter.kubeapi import KubeApi, KubeApiError, KubeUnavailable, watch_event_from_line
from bf_jupyter.kubestreams import AsyncLineStream

Obj = dict[str, Any]
T = TypeVar("T")
NODE_LEASE_NAMESPACE = "kube-node-lease"
_WATCH_SECONDS = 300
_log = logging.getLogger(__name__)


def now_micro() -> str:
    """A ``MicroTime`` (Lease renewals, Event series) as the API writes it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeApi:
    """One node's connection. ``close()`` ends it (and every call still queued)."""

    def __init__(self, kubeconfig: Path, node_name: str) -> None:
        self.node_name = node_name
        self.api = KubeApi.connect(kubeconfig=str(kubeconfig), request_timeout=30)
        self._pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix=f"{node_name}-api")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.api.close()

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(function, *args, **kwargs))

    async def find(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return await self.call(self.api.get, kind, name, namespace)
        except KubeApiError as error:
            if error.not_found:
                return None
            raise

    async def request_token(self, namespace: str, service_account: str, spec: Obj) -> str:
        """A service-account token (TokenRequest with ``spec``, as a kubelet asks for one)."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        return await self.call(self._token_request, namespace, service_account, body)

    def _token_request(self, namespace: str, service_account: str, body: Obj) -> str:
        # KubeApi has no subresource create (the product needs none); the official client does.
        from kubernetes import client

        core: Any = client.CoreV1Api(self.api._client)  # the raw reply: _preload_content=False
        try:
            response = core.create_namespaced_service_account_token(
                service_account, namespace, body, _preload_content=False
            )
        except client.ApiException as error:
            raise KubeApiError(
                str(error.body or error.reason), status=error.status or 0, reason=str(error.reason)
            ) from None
        return str(json.loads(response.data)["status"]["token"])

    # ----- pods ----------------------------------------------------------------------------------

    async def patch_pod_status(
        self, namespace: str, name: str, uid: str, status: Obj
    ) -> Obj | None:
        """Write a pod's status (conditions merge by type, as a kubelet's patch does), to that
        incarnation only (the patch's UID is a precondition); None when it is gone."""
        body = {"metadata": {"uid": uid}, "status": status}
        try:
            return await self.call(self.api.patch_status, "Pod", name, body, namespace)
        except KubeApiError as error:
            if error.not_found or error.status == 409:
                return None
            raise

    async def remove_pod(self, namespace: str, name: str, uid: str) -> None:
        """The kubelet's last word on a terminating pod whose containers stopped: delete it now
        (grace 0), that incarnation only."""
        try:
            await self.call(
                self.api.delete, "Pod", name, namespace, grace_period_seconds=0, uid=uid
            )
        except KubeApiError as error:
            if error.status != 409:  # 409: a newer pod of that name; not ours to delete
                raise

    async def watch_pods(self, stopping: asyncio.Event) -> AsyncIterator[tuple[str, Obj]]:
        """``(event type, pod)`` for every pod bound to this node, for ever: a watch from "now"
        first replays the pods that exist as ``ADDED``; a broken watch resumes from the last
        resourceVersion seen, one that is too old (``410 Gone``) starts again from "now".
        (A pod force-deleted during such a gap is missed: tests do not break the watch.)"""
        selector = f"spec.nodeName={self.node_name}"
        version = ""
        while not stopping.is_set():
            try:
                async for event_type, pod in self._watch_from(selector, version):
                    version = pod["metadata"].get("resourceVersion", version)
                    if event_type != "BOOKMARK":
                        yield event_type, pod
            except KubeApiError as error:
                if error.status == 410:
                    version = ""
                    continue
                _log.warning("%s: pod watch failed: %s", self.node_name, error)
                await _sleep_unless(stopping, 1)
            except KubeUnavailable as error:
                _log.warning("%s: pod watch broke: %s", self.node_name, error)
                await _sleep_unless(stopping, 1)

    async def _watch_from(self, selector: str, version: str) -> AsyncIterator[tuple[str, Obj]]:
        opener = partial(
            self.api.open_watch,
            "Pod",
            None,
            field_selector=selector,
            resource_version=version or None,
            timeout_seconds=_WATCH_SECONDS,
        )
        async with AsyncLineStream(opener) as lines:
            async for line in lines:
                event = watch_event_from_line(line)
                if event is not None:
                    event.object.setdefault("kind", "Pod")
                    yield event.type, event.object

    # ----- the node and its lease -----------------------------------------------------------------

    async def register_node(self, node: Obj) -> Obj:
        """Create the Node (or take over the one of the same name) and write its status."""
        try:
            created = await self.call(self.api.create, "Node", node)
        except KubeApiError as error:
            if error.reason != "AlreadyExists":
                raise
            created = await self.call(
                self.api.patch, "Node", self.node_name, {"metadata": node["metadata"]}
            )
        await self.patch_node_status(node["status"])
        return created

    async def patch_node_status(self, status: Mapping[str, Any]) -> Obj:
        return await self.call(
            self.api.patch_status, "Node", self.node_name, {"status": dict(status)}
        )

    async def renew_lease(self, node_uid: str, duration_seconds: int) -> None:
        """Create or renew ``kube-node-lease/<node>``: the heartbeat the node controller reads."""
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": now_micro(),
        }
        try:
            await self.call(
                self.api.patch, "Lease", self.node_name, {"spec": spec}, NODE_LEASE_NAMESPACE
            )
        except KubeApiError as error:
            if not error.not_found:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": node_uid}
            lease = {
                "metadata": {"name": self.node_name, "ownerReferences": [owner]},
                "spec": spec,
            }
            await self.call(self.api.create, "Lease", lease, NODE_LEASE_NAMESPACE)


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
