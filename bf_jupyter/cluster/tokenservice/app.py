"""The token service's HTTPS server (tornado): ``POST /v1/token``, ``GET /healthz``, ``GET /readyz``.

Requests carry no body (the credential is the ``Authorization`` header), so bodies and headers are
bounded tightly at tornado's HTTP layer; requests in progress are bounded too, and past that bound a
request is refused at once with 429, so a flood degrades to refusals rather than to queued work and
memory growth. Issuing may wait on the Kubernetes API: it runs on a small thread pool. No access log
and no header is ever logged (the Authorization header is a credential); refusals are logged by the
issuer, one line each. Sockets, TLS (re-read when its files change) and the thread pool are
``https_service.HttpsListener``'s.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tornado.web

from bf_jupyter.cluster.https_service import HealthHandler, HttpsListener
from bf_jupyter.cluster.tokenservice.issuer import Answer, TokenIssuer, refusal_body

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


def _log_failures(handler: tornado.web.RequestHandler) -> None:
    if handler.get_status() >= 500 and handler.request.path != TOKEN_PATH:
        log.info(
            "%s %s answered %d", handler.request.method, handler.request.path, handler.get_status()
        )


class TokenServer:
    """Owns one server's listener (socket, TLS context, thread pool): ``start``, then ``stop``."""

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
        self._listener = HttpsListener(
            tls_cert=tls_cert,
            tls_key=tls_key,
            port=port,
            address=address,
            reload_seconds=reload_seconds,
            threads=_THREADS,
            thread_name_prefix="bf-token",
            log=log,
        )
        self.draining = self._listener.draining

    async def start(self) -> int:
        """Listen and serve; returns the bound port (useful with ``port=0``)."""
        return await self._listener.start(
            self._application,
            max_header_size=MAX_HEADER_BYTES,
            max_body_size=MAX_BODY_BYTES,
            idle_connection_timeout=60,
            body_timeout=10,
        )

    async def stop(self, *, grace_seconds: float = 5.0) -> None:
        """Stop accepting, let open requests finish for up to ``grace_seconds``, release everything.
        Safe to call twice."""
        await self._listener.stop(grace_seconds=grace_seconds)

    def _application(self, pool: ThreadPoolExecutor) -> tornado.web.Application:
        return tornado.web.Application(
            [
                (
                    TOKEN_PATH,
                    _TokenHandler,
                    {"issuer": self.issuer, "pool": pool, "bounds": self.bounds},
                ),
                (r"/healthz", HealthHandler),
                (r"/readyz", HealthHandler, {"draining": self.draining}),
            ],
            log_function=_log_failures,
            compress_response=False,
        )
