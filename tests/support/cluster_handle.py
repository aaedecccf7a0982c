"""What e2e tests hold: a kubeconfig, a ``KubeApi`` on it and helpers that wait with watches (never
polling with sleeps). The same handle serves the test cluster and a real one
(``BF_E2E_KUBECONFIG``), so tests are written once."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bf_jupyter.kubeapi import KubeApi, KubeApiError

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")


class WaitTimeout(AssertionError):
    """What was awaited did not happen in time; the message shows the last state seen."""


@dataclass
class ClusterHandle:
    kubeconfig: Path
    api: KubeApi
    control_plane: ControlPlane | None = None  # the test cluster's (None on a real cluster)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    namespace_setup: list[Callable[[str], None]] = field(default_factory=list)

    def core_v1(self) -> Any:
        """The official client's CoreV1Api on this cluster, for tests that need wire-level calls
        ``KubeApi`` does not offer (JSON patch, replace with a stale version, dry run)."""
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        return client.CoreV1Api(api_client)

    # ----- namespaces -----------------------------------------------------------------------------

    def create_namespace(
        self, prefix: str = "e2e", *, labels: Mapping[str, str] | None = None
    ) -> str:
        """A fresh namespace (unique name) prepared like every test namespace (``namespace_setup``)."""
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.api.create(
            "Namespace",
            {"metadata": {"name": name, "labels": {**self.namespace_labels, **(labels or {})}}},
        )
        for prepare in self.namespace_setup:
            prepare(name)
        return name

    def create_namespace_with_quota(
        self, hard: Mapping[str, str | int], *, prefix: str = "e2e", quota_name: str = "gpu-quota"
    ) -> str:
        name = self.create_namespace(prefix)
        self.api.create(
            "ResourceQuota",
            {
                "metadata": {"name": quota_name},
                "spec": {"hard": {k: str(v) for k, v in hard.items()}},
            },
            name,
        )
        return name

    def delete_namespace(self, name: str, *, timeout: float = 60) -> None:
        """Delete and wait until the namespace (and so everything in it) is gone."""
        if not self.api.delete("Namespace", name):
            return
        self.wait_for(
            "Namespace",
            None,
            lambda event, obj: event == "DELETED" and obj["metadata"]["name"] == name,
            field_selector=f"metadata.name={name}",
            timeout=timeout,
            describe=f"namespace {name} to go",
            initial=lambda items: not items,
        )

    # ----- waiting --------------------------------------------------------------------------------

    def wait_for(
        self,
        kind: str,
        namespace: str | None,
        condition: Callable[[str, Obj], bool],
        *,
        field_selector: str = "",
        label_selector: str = "",
        timeout: float = 30,
        describe: str = "",
        initial: Callable[[list[Obj]], bool | Obj | None] | None = None,
    ) -> Obj:
        """List, then watch from the newest listed resourceVersion (or, with nothing listed, from
        "now" with the current state replayed) until ``condition(event_type, obj)`` holds.
        ``initial`` may settle it from the list alone. Raises ``WaitTimeout``."""
        deadline = time.monotonic() + timeout
        items = self.api.list(
            kind, namespace, field_selector=field_selector, label_selector=label_selector
        )
        if initial is not None and (settled := initial(items)):
            return settled if isinstance(settled, dict) else {}
        for item in items:
            if condition("ADDED", item):
                return item
        versions = [
            int(i["metadata"]["resourceVersion"])
            for i in items
            if str(i["metadata"].get("resourceVersion", "")).isdigit()
        ]
        version: str | None = str(max(versions)) if versions else None
        last: Obj | None = items[-1] if items else None
        while (remaining := deadline - time.monotonic()) > 0:
            for event in self.api.watch(
                kind,
                namespace,
                field_selector=field_selector,
                label_selector=label_selector,
                resource_version=version,
                timeout_seconds=max(1, int(remaining)),
            ):
                if event.type == "BOOKMARK":
                    continue
                last = event.object
                version = event.object["metadata"].get("resourceVersion", version)
                if condition(event.type, event.object):
                    return event.object
        raise WaitTimeout(
            f"timed out after {timeout:g}s waiting for {describe or kind}; last seen: {_summary(last)}"
        )

    def wait_for_pod(
        self,
        namespace: str,
        name: str,
        condition: Callable[[Obj], bool],
        *,
        timeout: float = 30,
        describe: str = "",
    ) -> Obj:
        return self.wait_for(
            "Pod",
            namespace,
            lambda event, obj: event != "DELETED" and condition(obj),
            field_selector=f"metadata.name={name}",
            timeout=timeout,
            describe=describe or f"pod {namespace}/{name}",
        )

    def wait_for_pod_phase(
        self, namespace: str, name: str, phases: str | Iterable[str], *, timeout: float = 60
    ) -> Obj:
        wanted = {phases} if isinstance(phases, str) else set(phases)
        return self.wait_for_pod(
            namespace,
            name,
            lambda pod: (pod.get("status") or {}).get("phase") in wanted,
            timeout=timeout,
            describe=f"pod {namespace}/{name} to be {'/'.join(sorted(wanted))}",
        )

    def wait_for_pod_gone(self, namespace: str, name: str, *, timeout: float = 60) -> None:
        self.wait_for(
            "Pod",
            namespace,
            lambda event, obj: event == "DELETED",
            field_selector=f"metadata.name={name}",
            timeout=timeout,
            describe=f"pod {namespace}/{name} to go",
            initial=lambda items: not items,
        )

    def wait_for_event(
        self, namespace: str, involved: str, reason: str, *, timeout: float = 30
    ) -> Obj:
        return self.wait_for(
            "Event",
            namespace,
            lambda event, obj: event != "DELETED" and obj.get("reason") == reason,
            field_selector=f"involvedObject.name={involved}",
            timeout=timeout,
            describe=f"event {reason} for {involved}",
        )

    def events_for(self, namespace: str, involved: str) -> list[Obj]:
        return self.api.list("Event", namespace, field_selector=f"involvedObject.name={involved}")

    def pod_log(self, namespace: str, name: str, *, container: str | None = None) -> str:
        return "\n".join(self.api.pod_log(name, namespace, container=container))

    def follow_log(self, namespace: str, name: str, *, container: str | None = None) -> LogFollower:
        """Follow a running container's log on a thread; see ``LogFollower``."""
        return LogFollower(self.api, namespace, name, container)

    def delete_quietly(self, kind: str, name: str, namespace: str | None = None) -> None:
        with contextlib.suppress(KubeApiError):
            self.api.delete(kind, name, namespace)


class LogFollower:
    """Collects a followed log's lines on a daemon thread, so a test can wait for one line (an
    event, not a sleep) and later for the stream's end (the container stopped)."""

    def __init__(self, api: KubeApi, namespace: str, name: str, container: str | None) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._thread = threading.Thread(
            target=self._read, args=(api, namespace, name, container), daemon=True
        )
        self._thread.start()

    def _read(self, api: KubeApi, namespace: str, name: str, container: str | None) -> None:
        try:
            for line in api.pod_log(name, namespace, container=container, follow=True):
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def wait_for_line(self, text: str, *, timeout: float = 30) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in line for line in self.lines) or self._ended, timeout
            )
            match = next((line for line in self.lines if text in line), None)
        if not found or match is None:
            raise WaitTimeout(
                f"no log line containing {text!r} within {timeout:g}s; lines: {self.lines}"
            )
        return match

    def wait_for_end(self, *, timeout: float = 30) -> list[str]:
        with self._changed:
            if not self._changed.wait_for(lambda: self._ended, timeout):
                raise WaitTimeout(f"log stream still open after {timeout:g}s; lines: {self.lines}")
            return list(self.lines)


def _summary(obj: Obj | None) -> str:
    if obj is None:
        return "nothing"
    status = obj.get("status") or {}
    states = [(s.get("name"), s.get("state")) for s in status.get("containerStatuses") or []]
    return f"{obj.get('kind', '')} {obj['metadata'].get('name')} phase={status.get('phase')} conditions={status.get('conditions')} containers={states}"
