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
frozen service, the metrics (touched on the event-loop thread only) and the thread pool.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from tornado import httputil
from tornado.http1connection import HTTP1Connection

from bf_jupyter.cluster.webhook.review import Verdict, render_reply
from bf_jupyter.cluster.webhook.service import Reply

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from concurrent.futures import ThreadPoolExecutor

    from bf_jupyter.cluster.webhook.metrics import Metrics
    from bf_jupyter.cluster.webhook.service import AdmissionService

__all__ = ["ADMISSION_PATHS", "AdmissionRoutes"]

log = logging.getLogger("bf_jupyter.webhook")

# Request path -> endpoint name (the label of its metrics).
ADMISSION_PATHS = {"/mutate": "mutate", "/validate": "validate"}


class AdmissionRoutes(httputil.HTTPServerConnectionDelegate):
    """The server's delegate: admission POSTs answered here, everything else by ``application``."""

    def __init__(
        self,
        application: httputil.HTTPServerConnectionDelegate,
        service: AdmissionService,
        metrics: Metrics,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.application = application
        self.service = service
        self.metrics = metrics
        self.pool = pool

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
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._other is not None:
            return self._other.data_received(chunk)
        self._chunks.append(chunk)
        return None

    def finish(self) -> None:
        if self._other is not None:
            self._other.finish()
            return
        self._started = time.perf_counter()
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
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
        if self._other is not None:
            self._other.on_connection_close()

    def _validate_off_the_loop(self, body: bytes) -> None:
        """Validation may wait for the Kubernetes API: it runs on the pool, answered when done."""
        if isinstance(self._connection, HTTP1Connection):  # told when the client hangs up
            self._connection.set_close_callback(self.on_connection_close)
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._routes.pool, self._routes.service.validate, body
            )
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._reply(_SHUTTING_DOWN)
            return
        future.add_done_callback(self._reply_when_done)

    def _reply_when_done(self, future: asyncio.Future[Reply]) -> None:
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


@functools.lru_cache(maxsize=8)
def _start_line(status: int) -> httputil.ResponseStartLine:
    return httputil.ResponseStartLine("HTTP/1.1", status, HTTPStatus(status).phrase)


@functools.lru_cache(maxsize=2)
def _http_date(second: int) -> str:
    """The Date header (RFC 9110 asks origin servers with a clock for one), formatted once a second."""
    return email.utils.formatdate(second, usegmt=True)
