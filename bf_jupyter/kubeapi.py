"""The one module that talks to the Kubernetes API (through the official ``kubernetes`` client).

Everything else asks this facade: the webhook's checks, the kernel provisioner, the server's quota
view and the magic's ``submit``. It owns loading credentials (in-cluster, else kubeconfig), turning
``ApiException`` into one readable sentence, and the few calls the project makes. Calls block;
async callers use ``asyncio.to_thread``. ``kubernetes`` is imported lazily (it is slow to import).

Objects are plain dicts in the API's JSON shape (camelCase), the same shape manifests, admission
reviews and tests use, so no caller handles the client's generated model classes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bf_jupyter.kubestreams import LineStream

__all__ = ["KubeApi", "KubeApiError", "KubeUnavailable", "WatchEvent", "watch_event_from_line"]

Obj = dict[str, Any]
_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


# kind → (client API class, resource name in its method names)
# A log line longer than this is cut (a process printing without newlines must not grow one line
# in the kernel's memory forever); metric records are far shorter.
LOG_MAX_LINE = 256 * 1024
_KINDS: dict[str, tuple[str, str]] = {
    "Pod": ("CoreV1Api", "pod"),
    "Secret": ("CoreV1Api", "secret"),
    "Event": ("CoreV1Api", "event"),
    "ResourceQuota": ("CoreV1Api", "resource_quota"),
    "ConfigMap": ("CoreV1Api", "config_map"),
    "Namespace": ("CoreV1Api", "namespace"),
    "Node": ("CoreV1Api", "node"),
    "Job": ("BatchV1Api", "job"),
    "Service": ("CoreV1Api", "service"),
    "Lease": ("CoordinationV1Api", "lease"),
    # create only: the token service asks whether a service-account token is valid
    "TokenReview": ("AuthenticationV1Api", "token_review"),
}
# Kinds reached through the generic (custom objects) client, so they work with any client release:
# kind → (group, version, plural, namespaced). DRA (resource.k8s.io/v1, GA in Kubernetes 1.34).
_GROUP_KINDS: dict[str, tuple[str, str, str, bool]] = {
    "ResourceClaim": ("resource.k8s.io", "v1", "resourceclaims", True),
    "ResourceClaimTemplate": ("resource.k8s.io", "v1", "resourceclaimtemplates", True),
    "ResourceSlice": ("resource.k8s.io", "v1", "resourceslices", False),
    "DeviceClass": ("resource.k8s.io", "v1", "deviceclasses", False),
}


class KubeUnavailable(RuntimeError):
    """No API server is configured or reachable; the message says what was tried."""


class KubeApiError(RuntimeError):
    """The API server refused a call. ``status`` is the HTTP status, ``reason`` the API's reason
    (``NotFound``, ``Forbidden``, ``AlreadyExists``, ...) and the message the server's own words."""

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def not_found(self) -> bool:
        return self.status == 404


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: Obj


class KubeApi:
    """A connection to one API server. Build with ``KubeApi.connect()``."""

    def __init__(self, api_client: Any, *, request_timeout: float | None = None) -> None:
        self._client = api_client
        # Seconds one call may take (connect and read), None for the client's default (no limit).
        self._request_timeout = request_timeout

    @classmethod
    def connect(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        request_timeout: float | None = None,
        retries: int | None = None,
    ) -> KubeApi:
        """In-cluster credentials when running in a pod (and no kubeconfig is given), else the
        kubeconfig (``kubeconfig`` argument, ``$KUBECONFIG``, ``~/.kube/config``). Calls of the
        returned connection give up after ``request_timeout`` seconds when it is set, and retry a
        failed connection ``retries`` times (None: the client's default of 3, with back-off).

        Raises ``KubeUnavailable`` naming what was tried.
        """
        from kubernetes import client, config

        try:
            configuration = client.Configuration()
            if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(
                    config_file=_kubeconfig_file(kubeconfig),
                    context=context,
                    client_configuration=configuration,
                )
            if retries is not None:
                configuration.retries = retries
            return cls(client.ApiClient(configuration), request_timeout=request_timeout)
        except (config.ConfigException, OSError, TypeError, ValueError) as error:
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise KubeUnavailable(
                f"no Kubernetes API configured: not in a pod and kubeconfig {where} is unusable ({error})"
            ) from None

    def close(self) -> None:
        self._client.close()

    @staticmethod
    def default_namespace(*, kubeconfig: str | None = None, context: str | None = None) -> str:
        """The namespace to work in when none is given: the pod's own (in a cluster), else the
        kubeconfig context's, else ``default``. Never raises."""
        from kubernetes import config

        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            try:
                namespace = Path(_SERVICE_ACCOUNT_NAMESPACE).read_text(encoding="utf-8").strip()
                if namespace:
                    return namespace
            except OSError:
                pass
        try:
            _, active = config.list_kube_config_contexts(config_file=_kubeconfig_file(kubeconfig))
            if context is not None:
                contexts, _ = config.list_kube_config_contexts(
                    config_file=_kubeconfig_file(kubeconfig)
                )
                active = next((c for c in contexts if c.get("name") == context), active)
            namespace = str(((active or {}).get("context") or {}).get("namespace") or "")
        except (config.ConfigException, OSError, TypeError, ValueError):
            namespace = ""
        return namespace or "default"

    # ----- generic verbs over the core/v1 and batch/v1 resources we use ---------------------------

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        return self._call(kind, "read", name=name, namespace=namespace)

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Obj]:
        result = self._call(
            kind,
            "list",
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        return list(result.get("items") or [])

    def create(self, kind: str, body: Mapping[str, Any], namespace: str | None = None) -> Obj:
        return self._call(kind, "create", namespace=namespace, body=dict(body))

    def patch(
        self, kind: str, name: str, body: Mapping[str, Any], namespace: str | None = None
    ) -> Obj:
        return self._call(kind, "patch", name=name, namespace=namespace, body=dict(body))

    def patch_status(
        self, kind: str, name: str, body: Mapping[str, Any], namespace: str | None = None
    ) -> Obj:
        """Patch the ``status`` subresource (a strategic merge patch, as ``patch``)."""
        return self._call(
            kind, "patch", name=name, namespace=namespace, body=dict(body), status=True
        )

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        uid: str | None = None,
    ) -> bool:
        """Delete; returns False when the object was already gone. ``propagation_policy``
        (``Background``, ``Foreground``, ``Orphan``) says what happens to what it owns (a Job's pods).
        With ``uid``, only that very object is deleted: one created since under the same name is
        refused by the API server (``KubeApiError`` 409)."""
        # With a body (DeleteOptions) the API server ignores the query's options: all go in it.
        options = {
            "gracePeriodSeconds": grace_period_seconds,
            "propagationPolicy": propagation_policy,
            "preconditions": {"uid": uid} if uid else None,
        }
        try:
            self._call(
                kind,
                "delete",
                name=name,
                namespace=namespace,
                body={k: v for k, v in options.items() if v is not None} or None,
            )
        except KubeApiError as error:
            if error.not_found:
                return False
            raise
        return True

    def watch(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
    ) -> Iterator[WatchEvent]:
        """Stream changes (a real watch, not polling) until ``timeout_seconds`` or the caller stops.
        Bookmarks are skipped; an ``ERROR`` event raises ``KubeApiError``."""
        stream = self.open_watch(
            kind,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
        )
        try:
            for line in stream:
                event = watch_event_from_line(line)
                if event is not None and event.type != "BOOKMARK":
                    yield event
        finally:
            stream.close()

    def pod_log(
        self, name: str, namespace: str, *, container: str | None = None, follow: bool = False
    ) -> Iterator[str]:
        """Log lines of a pod's container (following them as they come when ``follow``)."""
        stream = self.open_pod_log(name, namespace, container=container, follow=follow)
        try:
            yield from stream
        finally:
            stream.close()

    # ----- streams that another thread can end at once (watches and followed logs) ----------------

    def open_watch(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
    ) -> LineStream:
        """Start a watch and return its raw lines (one JSON event each, see
        ``watch_event_from_line``). The server ends it after ``timeout_seconds``."""
        method = self._method(kind, "list", namespace)
        args = [namespace] if namespace is not None else []
        kwargs = self._kwargs(
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            allow_watch_bookmarks=True,
        )
        try:
            response = method(*args, watch=True, _preload_content=False, **kwargs)
        except Exception as error:
            raise self._translate(error) from None
        return LineStream(response, self._translate)

    def open_pod_log(
        self,
        name: str,
        namespace: str,
        *,
        container: str | None = None,
        follow: bool = True,
        tail_lines: int | None = None,
    ) -> LineStream:
        """A pod container's log as lines (followed as they come when ``follow``)."""
        from kubernetes import client

        api = client.CoreV1Api(self._client)
        kwargs = self._kwargs(container=container, follow=follow, tail_lines=tail_lines)
        try:
            response = api.read_namespaced_pod_log(
                name, namespace, _preload_content=False, **kwargs
            )
        except Exception as error:
            raise self._translate(error) from None
        return LineStream(response, self._translate, max_line=LOG_MAX_LINE)

    # ----- plumbing ------------------------------------------------------------------------------

    def _method(self, kind: str, verb: str, namespace: str | None, *, status: bool = False) -> Any:
        from kubernetes import client

        if kind in _GROUP_KINDS:
            return self._group_method(kind, verb, namespace, status=status)
        if kind not in _KINDS:
            known = ", ".join([*_KINDS, *_GROUP_KINDS])
            raise ValueError(f"kind {kind} is not supported: use one of {known}")
        api_name, resource = _KINDS[kind]
        api = getattr(client, api_name)(self._client)
        scope = "namespaced_" if namespace is not None else ""
        if verb == "list" and namespace is None and kind not in {"Namespace", "Node"}:
            return getattr(api, f"list_{resource}_for_all_namespaces")
        return getattr(api, f"{verb}_{scope}{resource}{'_status' if status else ''}")

    def _group_method(self, kind: str, verb: str, namespace: str | None, *, status: bool) -> Any:
        """A method of the generic client with the same call shape as the typed ones:
        ``(name?, namespace?, **options)``."""
        from kubernetes import client

        group, version, plural, namespaced = _GROUP_KINDS[kind]
        api = client.CustomObjectsApi(self._client)
        scope = "namespaced" if namespaced and namespace is not None else "cluster"
        suffix = "_status" if status else ""
        if verb == "list":
            function = getattr(api, f"list_{scope}_custom_object")
        else:
            action = "get" if verb == "read" else verb
            function = getattr(api, f"{action}_{scope}_custom_object{suffix}")

        def call(*args: Any, **kwargs: Any) -> Any:
            # The typed methods take (name?, namespace?); the generic ones name the group first.
            positional = list(args)
            if namespace is not None:
                positional.pop()
            where = [namespace] if scope == "namespaced" else []
            if verb == "patch":  # a JSON merge patch: the client would send a strategic one
                kwargs["_content_type"] = "application/merge-patch+json"
            return function(group, version, *where, plural, *positional, **kwargs)

        return call

    def _call(
        self,
        kind: str,
        verb: str,
        *,
        name: str | None = None,
        namespace: str | None = None,
        status: bool = False,
        **kw: Any,
    ) -> Obj:
        method = self._method(kind, verb, namespace, status=status)
        args = [a for a in (name, namespace) if a is not None]
        try:
            result = method(*args, **self._kwargs(_request_timeout=self._request_timeout, **kw))
        except Exception as error:
            raise self._translate(error) from None
        serialized = self._client.sanitize_for_serialization(result)
        return serialized if isinstance(serialized, dict) else {}

    @staticmethod
    def _kwargs(**kw: Any) -> dict[str, Any]:
        return {k: v for k, v in kw.items() if v not in (None, "")}

    @staticmethod
    def _translate(error: Exception) -> Exception:
        """One sentence from the API's Status, or ``KubeUnavailable`` when it could not be reached."""
        import json

        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if isinstance(error, ApiException):
            message, reason = error.reason or "error", error.reason or ""
            try:
                status = json.loads(error.body or "{}")
                message = status.get("message") or message
                reason = status.get("reason") or reason
            except (ValueError, AttributeError):
                pass
            return KubeApiError(message, status=int(error.status or 0), reason=str(reason))
        if isinstance(error, HTTPError | OSError):
            return KubeUnavailable(f"Kubernetes API unreachable: {error}")
        return error


def _kubeconfig_file(explicit: str | None) -> str | None:
    """``$KUBECONFIG`` as it is now: the client reads it once, at import, so a kernel that sets
    it later (``%env KUBECONFIG=...``) would otherwise still get the old one."""
    return explicit or os.environ.get("KUBECONFIG") or None


def watch_event_from_line(line: str) -> WatchEvent | None:
    """One line of a raw watch as an event (None for a blank line). An ``ERROR`` event (the API's
    ``Status``, e.g. 410 Gone when the resourceVersion is too old) raises ``KubeApiError``."""
    if not line.strip():
        return None
    data = json.loads(line)
    event = WatchEvent(str(data.get("type", "")), dict(data.get("object") or {}))
    if event.type == "ERROR":
        status = event.object
        raise KubeApiError(
            str(status.get("message") or "watch failed"),
            status=int(status.get("code") or 500),
            reason=str(status.get("reason") or ""),
        )
    return event
