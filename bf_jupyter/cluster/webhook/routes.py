"""``POST /mutate`` and ``POST /validate`` answered at tornado's HTTP layer; every other request goes
on to the tornado application.

A ``RequestHandler`` costs more CPU per request than the admission rules themselves: application
routing, a coroutine and a task per request, default headers, a Date header formatted anew, flush
bookkeeping (measured over TLS keep-alive: a handler that only answers ``allowed`` takes 250–300 µs
of CPU per request, the same answer from an ``HTTPMessageDelegate`` 140–175 µs). The admission
routes need none of it: take the body, ask the service, write one JSON reply. So ``AdmissionRoutes`` is the
server's connection delegate: it answers POSTs to the two paths itself (a query string, such as the
API server's ``?timeout=5s``, is ignored as tornado's routing ignores it) and hands every other
request (other paths, other methods, health, metrics) to the application unchanged. Framing,
keep-alive, TLS and the body size limit remain tornado's ``HTTP1Connection``'s, as for any handler.

Each request gets its own ``_AdmissionExchange``; the only objects shared between requests are the
frozen service, the metrics and the ``Limits`` counters (both touched on the event-loop thread only)
and the thread pool.

What callers can queue is bounded (``Limits``): admission requests in progress, the body bytes they
hold, and validations waiting for the pool. Past a bound a request is answered at once with 429 and
a refusal, its body dropped as it arrives, so a flood degrades to refusals (the validating webhook
fails closed) rather than to memory growth and an out-of-memory kill. With ``client_names`` the
admission paths also require the API server's client certificate (verified by the TLS layer
against ``--client-ca``) and one of those names in it.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from tornado import httputil
from tornado.http1connection import HTTP1Connection

from bf_jupyter.cluster.webhook.review import Verdict, render_reply
from bf_jupyter.cluster.webhook.service import Reply

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from concurrent.futures import ThreadPoolExecutor

    from bf_jupyter.cluster.webhook.metrics import Metrics
    from bf_jupyter.cluster.webhook.service import AdmissionService

__all__ = ["ADMISSION_PATHS", "AdmissionRoutes", "Limits"]

log = logging.getLogger("bf_jupyter.webhook")

# Request path -> endpoint name (the label of its metrics).
ADMISSION_PATHS = {"/mutate": "mutate", "/validate": "validate"}


@dataclass
class Limits:
    """Bounds on the work callers can queue, and the counters held against them (event-loop thread
    only). Defaults: 64 requests in progress, 64 MiB of bodies held, 64 validations waiting."""

    max_requests: int = 64
    max_body_bytes: int = 64 << 20
    max_queued_validations: int = 64
    requests: int = 0
    body_bytes: int = 0
    queued_validations: int = 0


class AdmissionRoutes(httputil.HTTPServerConnectionDelegate):
    """The server's delegate: admission POSTs answered here, everything else by ``application``."""

    def __init__(
        self,
        application: httputil.HTTPServerConnectionDelegate,
        service: AdmissionService,
        metrics: Metrics,
        pool: ThreadPoolExecutor,
        *,
        limits: Limits | None = None,
        client_names: frozenset[str] | None = None,
    ) -> None:
        self.application = application
        self.service = service
        self.metrics = metrics
        self.pool = pool
        self.limits = limits or Limits()
        self.client_names = client_names

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return _AdmissionExchange(self, server_conn, request_conn)

    def on_close(self, server_conn: object) -> None:
        self.application.on_close(server_conn)


class _AdmissionExchange(httputil.HTTPMessageDelegate):
    """One request: an admission review collected and answered, or passed on to the application."""

    def __init__(
        self, routes: AdmissionRoutes, server_conn: object, connection: httputil.HTTPConnection
    ) -> None:
        self._routes = routes
        self._server_conn = server_conn
        self._connection = connection
        self._other: httputil.HTTPMessageDelegate | None = None
        self._endpoint = ""
        self._path = ""
        self._chunks: list[bytes] = []
        self._closed = False
        self._started = 0.0
        self._refusal: Reply | None = None  # set when the request is refused before its body
        self._counted = False  # whether it holds a place in ``Limits.requests``
        self._held = 0  # body bytes it holds against ``Limits.body_bytes``

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)  # a server reads requests
        path = start_line.path.partition("?")[0]
        endpoint = ADMISSION_PATHS.get(path) if start_line.method == "POST" else None
        if endpoint is None:
            self._other = self._routes.application.start_request(
                self._server_conn, self._connection
            )
            return self._other.headers_received(start_line, headers)
        self._endpoint, self._path = endpoint, path
        self._started = time.perf_counter()
        self._refusal = self._unauthenticated() or self._admit(headers)
        return None

    def _unauthenticated(self) -> Reply | None:
        """A refusal when client certificates are required and this caller's does not qualify."""
        names = self._routes.client_names
        if names is None:
            return None
        stream = getattr(self._connection, "stream", None)
        tls = getattr(stream, "socket", None)
        peer = tls.getpeercert() if isinstance(tls, ssl.SSLSocket) else None
        if not peer:
            return _UNAUTHENTICATED
        if names and not names & _certificate_names(peer):
            return _failure(403, "this client certificate may not call the Bitfusion webhook")
        return None

    def _admit(self, headers: httputil.HTTPHeaders) -> Reply | None:
        """Take a place among the requests in progress, or a refusal when there is none (or the
        declared body is larger than the bytes left)."""
        limits = self._routes.limits
        declared = headers.get("Content-Length", "")
        size = int(declared) if declared.isdigit() else 0
        if (
            limits.requests >= limits.max_requests
            or size > limits.max_body_bytes - limits.body_bytes
        ):
            return _BUSY
        limits.requests += 1
        self._counted = True
        return None

    def _release(self) -> None:
        """Give back this request's place and bytes (idempotent)."""
        limits = self._routes.limits
        if self._counted:
            limits.requests -= 1
            self._counted = False
        limits.body_bytes -= self._held
        self._held = 0

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._other is not None:
            return self._other.data_received(chunk)
        if self._refusal is not None:
            return None  # refused: the body is read and dropped
        limits = self._routes.limits
        if limits.body_bytes + len(chunk) > limits.max_body_bytes:
            self._chunks.clear()
            self._release()
            self._refusal = _BUSY
            return None
        limits.body_bytes += len(chunk)
        self._held += len(chunk)
        self._chunks.append(chunk)
        return None

    def finish(self) -> None:
        if self._other is not None:
            self._other.finish()
            return
        if self._refusal is not None:
            self._reply(self._refusal)
            return
        self._started = time.perf_counter()
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        service = self._routes.service
        if self._endpoint == "validate" and service.facts.blocking:
            self._validate_off_the_loop(body)
            return
        answer = service.mutate if self._endpoint == "mutate" else service.validate
        try:
            reply = answer(body)
        except Exception:  # the service never raises; should it, the API server still gets a review
            reply = self._internal_error()
        self._reply(reply)

    def on_connection_close(self) -> None:
        self._closed = True
        self._release()
        if self._other is not None:
            self._other.on_connection_close()

    def _validate_off_the_loop(self, body: bytes) -> None:
        """Validation may wait for the Kubernetes API: it runs on the pool, answered when done."""
        limits = self._routes.limits
        if limits.queued_validations >= limits.max_queued_validations:
            self._reply(_BUSY)
            return
        if isinstance(self._connection, HTTP1Connection):  # told when the client hangs up
            self._connection.set_close_callback(self.on_connection_close)
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._routes.pool, self._routes.service.validate, body
            )
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._reply(_SHUTTING_DOWN)
            return
        limits.queued_validations += 1
        future.add_done_callback(self._reply_when_done)

    def _reply_when_done(self, future: asyncio.Future[Reply]) -> None:
        self._routes.limits.queued_validations -= 1
        if self._closed:
            return  # the API server gave up (or the server is stopping): nobody to answer
        if future.cancelled():  # the pool was shut down under it
            reply = _SHUTTING_DOWN
        elif future.exception() is not None:
            reply = self._internal_error(future.exception())
        else:
            reply = future.result()
        self._reply(reply)

    def _internal_error(self, error: BaseException | None = None) -> Reply:
        log.error("%s failed", self._endpoint, exc_info=error or True)
        return _failure(500, "the Bitfusion webhook failed (an internal error, logged)")

    def _reply(self, reply: Reply) -> None:
        self._release()
        headers = httputil.HTTPHeaders()
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(reply.body))
        headers["Date"] = _http_date(int(time.time()))
        self._connection.write_headers(_start_line(reply.status), headers, reply.body)
        self._connection.finish()
        self._routes.metrics.record(
            self._endpoint, reply.outcome, time.perf_counter() - self._started, reply.skipped
        )
        if reply.status >= 400:
            log.info("POST %s answered %d", self._path, reply.status)


def _failure(status: int, reason: str) -> Reply:
    return Reply(status, render_reply("", Verdict.deny([reason], code=status)), "error")


_SHUTTING_DOWN = _failure(503, "the Bitfusion webhook is shutting down: retry")
_BUSY = Reply(
    429,
    render_reply(
        "",
        Verdict.deny(
            ["the Bitfusion webhook is busy (too many reviews in progress): retry"], code=429
        ),
    ),
    "busy",
)
_UNAUTHENTICATED = _failure(
    401, "the Bitfusion webhook answers only the API server: present its client certificate"
)


def _certificate_names(peer: Mapping[str, Any]) -> frozenset[str]:
    """The subject common names and DNS names of a verified peer certificate."""
    names = {value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"}
    names |= {value for key, value in peer.get("subjectAltName", ()) if key == "DNS"}
    return frozenset(names)


@functools.lru_cache(maxsize=8)
def _start_line(status: int) -> httputil.ResponseStartLine:
    return httputil.ResponseStartLine("HTTP/1.1", status, HTTPStatus(status).phrase)


@functools.lru_cache(maxsize=2)
def _http_date(second: int) -> str:
    """The Date header (RFC 9110 asks origin servers with a clock for one), formatted once a second."""
    return email.utils.formatdate(second, usegmt=True)
