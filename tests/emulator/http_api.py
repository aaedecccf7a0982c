"""The emulated API over real HTTP(S): kube-apiserver's paths, verbs, query parameters, watch
streams (JSON lines, chunked) and ``Status`` errors, so the official client needs no special case.

Thin handlers: parse the path and query, call one ``Registry`` verb, write JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tornado.iostream
import tornado.web

from tests.emulator import errors, kinds
from tests.emulator.authorization import (
    Authorizer,
    Request,
    User,
    name_from_field_selector,
    request_verb,
)
from tests.emulator.selectors import object_filter

if TYPE_CHECKING:
    from tests.emulator.kinds import ResourceType
    from tests.emulator.registry import Registry

Obj = dict[str, Any]
LogSource = Callable[[str, str, dict[str, str]], AsyncIterator[bytes]]
_log = logging.getLogger(__name__)
MAX_WATCH_SECONDS = 1800


@dataclass(frozen=True)
class Target:
    resource: ResourceType
    namespace: str | None  # None: cluster-scoped or all namespaces
    name: str
    subresource: str


def parse_target(group: str, version: str, segments: list[str]) -> Target:
    """``namespaces/NS/PLURAL/NAME/SUB`` or ``PLURAL/NAME/SUB`` (the API's own resolution order)."""
    if len(segments) >= 3 and segments[0] == "namespaces":
        try:
            resource = kinds.resource_for_path(group, version, segments[2])
        except errors.ApiError:
            resource = None
        if resource is not None and resource.namespaced:
            name = segments[3] if len(segments) > 3 else ""
            sub = "/".join(segments[4:])
            return Target(resource, segments[1], name, sub)
    if not segments:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    resource = kinds.resource_for_path(group, version, segments[0])
    name = segments[1] if len(segments) > 1 else ""
    sub = "/".join(segments[2:])
    if resource.namespaced and name:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    if sub and sub not in resource.subresources:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    return Target(resource, None, name, sub)


class _Base(tornado.web.RequestHandler):
    def initialize(
        self, registry: Registry, authorizer: Authorizer, logs: LogSource | None
    ) -> None:
        self.registry = registry
        self.authorizer = authorizer
        self.logs = logs

    def prepare(self) -> None:
        header = self.request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        user = self.authorizer.authenticate(given)
        if user is None:
            self._send_error(errors.ApiError(401, "Unauthorized", "Unauthorized"))
            self.finish()
            return
        self.user: User = user

    def _send_json(self, body: Obj, code: int = 200) -> None:
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(body))

    def _send_error(self, error: errors.ApiError) -> None:
        self.clear()
        self._send_json(error.status_body(), error.code)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, errors.ApiError):
            self._send_error(exc)
        else:
            self._send_error(errors.internal(str(exc) if exc else f"HTTP {status_code}"))

    def _body(self) -> Any:
        if not self.request.body:
            return {}
        if "protobuf" in self.request.headers.get("Content-Type", ""):
            raise errors.ApiError(
                415,
                "UnsupportedMediaType",
                "the emulated API server reads JSON bodies only (kubectl writes protobuf): "
                "create objects with the kubernetes Python client; kubectl works for reads",
            )
        try:
            return json.loads(self.request.body)
        except ValueError as error:
            raise errors.bad_request(
                f"the body of the request was not valid JSON: {error}"
            ) from None

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, errors.ApiError):
            super().log_exception(typ, value, tb)


class DiscoveryHandler(_Base):
    async def get(self, path: str) -> None:
        path = path.strip("/")
        if path == "version":
            self._send_json(kinds.version_document())
        elif path in ("healthz", "livez", "readyz"):
            self.set_header("Content-Type", "text/plain")
            self.write("ok")
        elif path == "api":
            self._send_json(kinds.core_versions())
        elif path == "api/v1":
            self._send_json(kinds.resource_list("", "v1"))
        elif path == "apis":
            self._send_json(kinds.group_list())
        elif path.startswith("apis/") and path.count("/") == 2:
            _, group, version = path.split("/")
            self._send_json(kinds.resource_list(group, version))
        else:
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )


class ResourceHandler(_Base):
    """Every ``/api/v1/...`` and ``/apis/GROUP/VERSION/...`` resource path."""

    def _target(self, group: str | None, version: str, rest: str) -> tuple[Target, bool]:
        segments = [s for s in rest.split("/") if s]
        watching = False
        if segments and segments[0] == "watch":  # the deprecated /watch/ path prefix
            segments, watching = segments[1:], True
        target = parse_target(group or "", version, segments)
        watching = watching or self.get_query_argument("watch", "") in ("true", "1")
        self._authorize(target, watching)
        return target, watching

    def _authorize(self, target: Target, watching: bool) -> None:
        """RBAC, before anything else happens (raises the API's 403)."""
        name = target.name
        if not name and self.request.method == "GET":
            name = name_from_field_selector(self.get_query_argument("fieldSelector", ""))
        verb = request_verb(self.request.method or "", named=bool(target.name), watching=watching)
        resource = target.resource.plural + (f"/{target.subresource}" if target.subresource else "")
        request = Request(verb, target.resource.group, resource, target.namespace, name)
        self.authorizer.check(self.user, request)

    def _user(self) -> Obj:
        return self.user.info()

    def _dry_run(self) -> bool:
        return self.get_query_argument("dryRun", "") == "All"

    async def get(self, group: str | None, version: str, rest: str) -> None:
        target, watching = self._target(group, version, rest)
        if target.subresource == "log":
            await self._stream_log(target)
            return
        if target.name and target.subresource not in ("", "status"):
            raise errors.method_not_allowed(f"GET is not supported on {target.subresource}")
        if target.name:
            self._send_json(self.registry.get(target.resource, target.namespace or "", target.name))
            return
        predicate = object_filter(
            target.resource,
            self.get_query_argument("labelSelector", ""),
            self.get_query_argument("fieldSelector", ""),
        )
        if watching:
            await self._watch(target, predicate)
            return
        self._send_json(self.registry.list(target.resource, target.namespace, predicate))

    async def _watch(self, target: Target, predicate: Any) -> None:
        since = self.get_query_argument("resourceVersion", None)
        timeout = min(
            float(self.get_query_argument("timeoutSeconds", str(MAX_WATCH_SECONDS))),
            MAX_WATCH_SECONDS,
        )
        watcher = self.registry.store.open_watch(
            target.resource, target.namespace, predicate, since
        )
        self._closed = asyncio.Event()
        self._watcher = watcher
        self.set_header("Content-Type", "application/json")
        self.set_header("Transfer-Encoding", "chunked")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            self.flush()
            while not self._closed.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if item is None:
                    break
                event_type, obj = item
                self.write(json.dumps({"type": event_type, "object": obj}) + "\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            self.registry.store.close_watch(watcher)
        if not self._closed.is_set():
            self.finish()

    def on_connection_close(self) -> None:
        closed = getattr(self, "_closed", None)
        if closed is not None:
            closed.set()
            self._watcher.queue.put_nowait(None)  # wake the stream so it unregisters now

    async def _stream_log(self, target: Target) -> None:
        if self.logs is None or target.resource.kind != "Pod":
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )
        options = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        stream = self.logs(target.namespace or "", target.name, options)
        first = True
        try:
            async for chunk in stream:
                if first:
                    self.set_header("Content-Type", "text/plain")
                    first = False
                self.write(chunk)
                await self.flush()
        except tornado.iostream.StreamClosedError:
            return
        if first:
            self.set_header("Content-Type", "text/plain")
        self.finish()

    async def post(self, group: str | None, version: str, rest: str) -> None:
        target, _ = self._target(group, version, rest)
        body = self._body()
        if target.subresource == "binding":
            node = ((body.get("target") or {}).get("name")) or ""
            self.registry.bind(target.namespace or "", target.name, node)
            self._send_json(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
                201,
            )
            return
        if target.name:
            raise errors.method_not_allowed("POST is only supported on collections")
        created = await self.registry.create(
            target.resource,
            target.namespace or "",
            body,
            dry_run=self._dry_run(),
            user=self._user(),
        )
        self._send_json(created, 201)

    async def put(self, group: str | None, version: str, rest: str) -> None:
        target, _ = self._target(group, version, rest)
        updated = await self.registry.update(
            target.resource,
            target.namespace or "",
            target.name,
            self._body(),
            subresource=target.subresource,
            dry_run=self._dry_run(),
            user=self._user(),
        )
        self._send_json(updated)

    async def patch(self, group: str | None, version: str, rest: str) -> None:
        target, _ = self._target(group, version, rest)
        patched = await self.registry.patch(
            target.resource,
            target.namespace or "",
            target.name,
            self._body(),
            self.request.headers.get("Content-Type", ""),
            subresource=target.subresource,
            dry_run=self._dry_run(),
            user=self._user(),
        )
        self._send_json(patched)

    async def delete(self, group: str | None, version: str, rest: str) -> None:
        target, _ = self._target(group, version, rest)
        options = self._body() if self.request.body else {}
        grace_text = self.get_query_argument("gracePeriodSeconds", None)
        grace = int(grace_text) if grace_text is not None else options.get("gracePeriodSeconds")
        propagation = (
            self.get_query_argument("propagationPolicy", None)
            or options.get("propagationPolicy")
            or "Background"
        )
        names = [target.name]
        if not target.name:  # deletecollection
            predicate = object_filter(
                target.resource,
                self.get_query_argument("labelSelector", ""),
                self.get_query_argument("fieldSelector", ""),
            )
            names = [
                o["metadata"]["name"]
                for o in self.registry.store.list(target.resource, target.namespace, predicate)
            ]
        results = [
            await self.registry.delete(
                target.resource,
                target.namespace or "",
                name,
                grace_period=grace,
                propagation=propagation,
                dry_run=self._dry_run(),
                user=self._user(),
            )
            for name in names
        ]
        if target.name:
            self._send_json(results[0])
        else:
            self._send_json(
                {
                    "kind": f"{target.resource.kind}List",
                    "apiVersion": target.resource.api_version,
                    "metadata": {},
                    "items": results,
                }
            )


def make_app(
    registry: Registry, *, authorizer: Authorizer, logs: LogSource | None
) -> tornado.web.Application:
    settings = {"registry": registry, "authorizer": authorizer, "logs": logs}
    return tornado.web.Application(
        [
            (r"/api/(v1)/(.*)", _CoreResourceHandler, settings),
            (r"/apis/([^/]+)/([^/]+)/(.+)", ResourceHandler, settings),
            (r"/(.*)", DiscoveryHandler, settings),
        ],
        compress_response=False,
        log_function=_log_request,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Server errors only: the tests' own requests would drown everything else."""
    if handler.get_status() >= 500:
        _log.warning("%d %s", handler.get_status(), handler._request_summary())


class _CoreResourceHandler(ResourceHandler):
    """``/api/v1/...``: the core group, whose name is empty."""

    async def get(self, version: str, rest: str) -> None:  # type: ignore[override]
        if not rest.strip("/"):
            self._send_json(kinds.resource_list("", "v1"))
            return
        await super().get("", version, rest)

    async def post(self, version: str, rest: str) -> None:  # type: ignore[override]
        await super().post("", version, rest)

    async def put(self, version: str, rest: str) -> None:  # type: ignore[override]
        await super().put("", version, rest)

    async def patch(self, version: str, rest: str) -> None:  # type: ignore[override]
        await super().patch("", version, rest)

    async def delete(self, version: str, rest: str) -> None:  # type: ignore[override]
        await super().delete("", version, rest)
