"""The token service's HTTPS server (tornado): ``POST /v1/token``, ``GET /healthz``, ``GET /readyz``.

Requests carry no body (the credential is the ``Authorization`` header), so bodies and headers are
bounded tightly at tornado's HTTP layer; requests in progress are bounded too, and past that bound a
request is refused at once with 429, so a flood degrades to refusals rather than to queued work and
memory growth. Issuing may wait on the Kubernetes API: it runs on a small thread pool. No access log
and no header is ever logged (the Authorization header is a credential); refusals are logged by the
issuer, one line each. The serving certificate is re-read when its files change.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from bf_jupyter.cluster.tokenservice.issuer import Answer, TokenIssuer, refusal_body
from bf_jupyter.cluster.webhook.app import tls_context

__all__ = ["TOKEN_PATH", "Bounds", "TokenServer"]

log = logging.getLogger("bf_jupyter.tokenservice")

TOKEN_PATH = "/v1/token"
# A projected token is 1–2 KiB; headers past this are refused by tornado (431 / closed).
MAX_HEADER_BYTES = 16 << 10
# Nothing is read from a body; a few bytes are tolerated (some clients send "{}").
MAX_BODY_BYTES = 1 << 10
_THREADS = 8


@dataclass
class Bounds:
    """Requests in progress at once (default 32), and the counter held against it (loop thread)."""

    max_requests: int = 32
    requests: int = 0


class _TokenHandler(tornado.web.RequestHandler):
    def initialize(self, *, issuer: TokenIssuer, pool: ThreadPoolExecutor, bounds: Bounds) -> None:
        self.issuer = issuer
        self.pool = pool
        self.bounds = bounds

    async def post(self) -> None:
        if self.bounds.requests >= self.bounds.max_requests:
            self._answer(Answer(429, refusal_body("the token service is busy: retry"), "busy"))
            return
        self.bounds.requests += 1
        try:
            authorization = self.request.headers.get("Authorization")
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(self.pool, self.issuer.issue, authorization)
        except RuntimeError:  # the pool is shut down: the server is stopping
            answer = Answer(
                503, refusal_body("the token service is stopping: retry"), "unavailable"
            )
        finally:
            self.bounds.requests -= 1
        self._answer(answer)

    def _answer(self, answer: Answer) -> None:
        self.set_status(answer.status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(answer.body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(refusal_body(self._reason or "request refused"))


class _HealthHandler(tornado.web.RequestHandler):
    def initialize(self, *, draining: asyncio.Event | None = None) -> None:
        self.draining = draining

    def get(self) -> None:
        if self.draining is not None and self.draining.is_set():
            self.set_status(503)
            self.finish("draining\n")
            return
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("ok\n")


def _log_failures(handler: tornado.web.RequestHandler) -> None:
    if handler.get_status() >= 500 and handler.request.path != TOKEN_PATH:
        log.info(
            "%s %s answered %d", handler.request.method, handler.request.path, handler.get_status()
        )


class TokenServer:
    """Owns one server's socket, TLS context and thread pool: ``start``, then ``stop``."""

    def __init__(
        self,
        issuer: TokenIssuer,
        *,
        tls_cert: str | Path,
        tls_key: str | Path,
        port: int = 8443,
        address: str = "",
        bounds: Bounds | None = None,
        reload_seconds: float = 60.0,
    ) -> None:
        self.issuer = issuer
        self.bounds = bounds or Bounds()
        self.draining = asyncio.Event()
        self._cert, self._key = Path(tls_cert), Path(tls_key)
        self._port, self._address = port, address
        self._reload_seconds = reload_seconds
        self._stamp = self._cert_stamp()
        self._context = tls_context(self._cert, self._key)
        self._pool: ThreadPoolExecutor | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._reloader: tornado.ioloop.PeriodicCallback | None = None

    async def start(self) -> int:
        """Listen and serve; returns the bound port (useful with ``port=0``)."""
        self._pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="bf-token")
        application = tornado.web.Application(
            [
                (
                    TOKEN_PATH,
                    _TokenHandler,
                    {"issuer": self.issuer, "pool": self._pool, "bounds": self.bounds},
                ),
                (r"/healthz", _HealthHandler),
                (r"/readyz", _HealthHandler, {"draining": self.draining}),
            ],
            log_function=_log_failures,
            compress_response=False,
        )
        self._server = tornado.httpserver.HTTPServer(
            application,
            ssl_options=self._context,
            max_header_size=MAX_HEADER_BYTES,
            max_body_size=MAX_BODY_BYTES,
            idle_connection_timeout=60,
            body_timeout=10,
        )
        family = socket.AF_INET if self._address in ("", "0.0.0.0") else socket.AF_UNSPEC
        sockets = tornado.netutil.bind_sockets(self._port, self._address or None, family=family)
        self._server.add_sockets(sockets)
        if self._reload_seconds > 0:
            self._reloader = tornado.ioloop.PeriodicCallback(
                self._reload_if_changed, self._reload_seconds * 1000
            )
            self._reloader.start()
        return int(sockets[0].getsockname()[1])

    async def stop(self, *, grace_seconds: float = 5.0) -> None:
        """Stop accepting, let open requests finish for up to ``grace_seconds``, release everything.
        Safe to call twice."""
        if self._reloader is not None:
            self._reloader.stop()
            self._reloader = None
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()
            try:
                await asyncio.wait_for(server.close_all_connections(), grace_seconds)
            except TimeoutError:
                log.warning("connections still open after %.0f s; closing anyway", grace_seconds)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _cert_stamp(self) -> tuple[float, float]:
        try:
            return (self._cert.stat().st_mtime, self._key.stat().st_mtime)
        except OSError:
            return (0.0, 0.0)

    def _reload_if_changed(self) -> None:
        stamp = self._cert_stamp()
        if stamp == self._stamp:
            return
        try:
            self._context.load_cert_chain(str(self._cert), str(self._key))
        except (OSError, ssl.SSLError) as error:
            log.warning("serving certificate changed but cannot be loaded yet (%s)", error)
            return
        self._stamp = stamp
        log.info("serving certificate reloaded from %s", self._cert)
