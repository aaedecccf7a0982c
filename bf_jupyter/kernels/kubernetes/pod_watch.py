"""Following one kernel pod through the API with watches: its changes, its Events, its log.

Each stream is read in its own daemon thread (``AsyncLineStream``) and ends at once when the caller
stops reading, so a kernel that starts, fails or is shut down never leaves a reader behind. A watch
the server ends (its timeout) resumes from the last resourceVersion; a too-old version (410 Gone)
re-reads the pod, so no change is ever missed and nothing polls.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from bf_jupyter.kubeapi import KubeApi, KubeApiError, KubeUnavailable, WatchEvent
from bf_jupyter.kubeapi import watch_event_from_line as parse_watch_line
from bf_jupyter.kubestreams import AsyncLineStream, LineStream

__all__ = [
    "follow_events",
    "follow_log",
    "follow_pod",
    "log_tail",
    "read_pod_or_none",
    "wait_all_gone",
    "wait_pod_gone",
]

log = logging.getLogger(__name__)
_WATCH_SECONDS = 300  # the server ends a watch after this; it is resumed where it stopped
_RETRY_SECONDS = (0.5, 1, 2, 5, 10, 30)


def _version(obj: dict[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion") or None


async def follow_pod(
    api: KubeApi,
    namespace: str,
    name: str,
    *,
    resource_version: str | None,
    retry_unavailable: bool = False,
) -> AsyncIterator[WatchEvent]:
    """The pod's changes after ``resource_version`` (all of them, resumed across watch timeouts),
    ending after its DELETED event. With ``retry_unavailable`` an unreachable API is retried with
    back-off instead of raising ``KubeUnavailable``."""
    version = resource_version
    failures = 0

    def open_watch(since: str | None) -> LineStream:
        return api.open_watch(
            "Pod",
            namespace,
            field_selector=f"metadata.name={name}",
            resource_version=since,
            timeout_seconds=_WATCH_SECONDS,
        )

    while True:
        try:
            async with AsyncLineStream(functools.partial(open_watch, version)) as lines:
                async for line in lines:
                    event = parse_watch_line(line)
                    if event is None:
                        continue
                    failures = 0
                    version = _version(event.object) or version
                    if event.type == "BOOKMARK":
                        continue
                    yield event
                    if event.type == "DELETED":
                        return
        except KubeApiError as error:
            if error.status != 410:
                raise
            current = await read_pod_or_none(api, namespace, name)
            if current is None:
                yield WatchEvent("DELETED", {"metadata": {"name": name}})
                return
            version = _version(current)
            yield WatchEvent("MODIFIED", current)
        except KubeUnavailable:
            if not retry_unavailable:
                raise
            delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
            failures += 1
            log.warning(
                "pod %s/%s: API unreachable, watching again in %g s", namespace, name, delay
            )
            await asyncio.sleep(delay)


async def read_pod_or_none(api: KubeApi, namespace: str, name: str) -> dict[str, Any] | None:
    """The pod as it is now, or None when it does not exist."""
    try:
        return await asyncio.to_thread(api.get, "Pod", name, namespace)
    except KubeApiError as error:
        if error.not_found:
            return None
        raise


async def follow_events(api: KubeApi, namespace: str, name: str) -> AsyncIterator[dict[str, Any]]:
    """Events about the pod, existing ones first. Ends quietly if Events cannot be watched (e.g. the
    server's role may not read them): they only add detail to progress."""
    try:
        async with AsyncLineStream(
            lambda: api.open_watch(
                "Event",
                namespace,
                field_selector=f"involvedObject.name={name}",
                timeout_seconds=_WATCH_SECONDS,
            )
        ) as lines:
            async for line in lines:
                event = parse_watch_line(line)
                if event is not None and event.type in {"ADDED", "MODIFIED"}:
                    yield event.object
    except (KubeApiError, KubeUnavailable, ValueError) as error:
        log.debug("pod %s/%s: no Events (%s)", namespace, name, error)


async def follow_log(api: KubeApi, namespace: str, name: str, container: str) -> AsyncIterator[str]:
    """The container's log lines from its start, followed. Ends quietly when the log is refused
    (the container is gone, or not started yet)."""
    try:
        async with AsyncLineStream(
            lambda: api.open_pod_log(name, namespace, container=container, follow=True)
        ) as lines:
            async for line in lines:
                yield line
    except (KubeApiError, KubeUnavailable) as error:
        log.debug("pod %s/%s: log not readable (%s)", namespace, name, error)


async def log_tail(api: KubeApi, namespace: str, name: str, container: str) -> list[str]:
    """The container's last log lines (what it said before it exited); empty when unreadable."""

    def read() -> list[str]:
        stream = api.open_pod_log(name, namespace, container=container, follow=False, tail_lines=20)
        return list(stream)

    try:
        return await asyncio.to_thread(read)
    except (KubeApiError, KubeUnavailable):
        return []


async def wait_pod_gone(api: KubeApi, namespace: str, name: str) -> None:
    """Return once the pod no longer exists (its DELETED event, or already absent)."""
    current = await read_pod_or_none(api, namespace, name)
    if current is None:
        return
    async for event in follow_pod(
        api, namespace, name, resource_version=_version(current), retry_unavailable=True
    ):
        if event.type == "DELETED":
            return


async def wait_all_gone(api: KubeApi, kind: str, namespace: str, label_selector: str) -> None:
    """Return once no ``kind`` matching ``label_selector`` exists (e.g. the ResourceClaims the
    resourceclaim controller deletes after their pod): a list, then a watch until each is gone."""
    while True:
        items = await asyncio.to_thread(api.list, kind, namespace, label_selector=label_selector)
        left = {str((i.get("metadata") or {}).get("name")) for i in items}
        if not left:
            return
        since = max((_version(i) or "0" for i in items), key=lambda v: int(v) if v.isdigit() else 0)

        def open_watch(version: str = since) -> LineStream:
            return api.open_watch(
                kind,
                namespace,
                label_selector=label_selector,
                resource_version=version,
                timeout_seconds=_WATCH_SECONDS,
            )

        try:
            async with AsyncLineStream(open_watch) as lines:
                async for line in lines:
                    event = parse_watch_line(line)
                    if event is not None and event.type == "DELETED":
                        left.discard(str((event.object.get("metadata") or {}).get("name")))
                        if not left:
                            return
        except KubeApiError as error:
            if error.status != 410:
                raise
