"""The webhook's HTTPS server (tornado): ``POST /mutate``, ``POST /validate``, ``GET /healthz``,
``GET /readyz`` and ``GET /metrics``.

The admission POSTs are answered by ``routes.AdmissionRoutes`` straight from tornado's HTTP layer
(read the body, ask the ``AdmissionService``, write its reply, record metrics); it passes every other
request to the tornado application built here. Mutation runs on the event loop (pure and fast);
validation runs on a small thread pool when it may wait for the Kubernetes API. No access log per
request on the hot path: only failures are logged. Sockets, TLS (re-read when its files change) and
the thread pool are ``https_service.HttpsListener``'s.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.web

from bf_jupyter.cluster.https_service import HealthHandler, HttpsListener
from bf_jupyter.cluster.webhook.metrics import Metrics
from bf_jupyter.cluster.webhook.review import Verdict, render_reply
from bf_jupyter.cluster.webhook.routes import ADMISSION_PATHS, AdmissionRoutes, Limits

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.service import AdmissionService

__all__ = ["WebhookServer", "make_app"]

log = logging.getLogger("bf_jupyter.webhook")

# An AdmissionReview carries the object and the old object; etcd stores objects up to 1.5 MiB.
# HTTP1Connection enforces it for every route, the admission ones included.
MAX_BODY_BYTES = 8 << 20
_VALIDATION_THREADS = 8


class _AdmissionRefusal(tornado.web.RequestHandler):
    """The admission paths for any method but POST (``AdmissionRoutes`` answers POST): tornado
    refuses with 405, and the refusal still comes as an AdmissionReview."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        verdict = Verdict.deny([self._reason or "request refused"], code=status_code)
        self.set_header("Content-Type", "application/json")
        self.finish(render_reply("", verdict))


class _MetricsHandler(tornado.web.RequestHandler):
    def initialize(self, *, metrics: Metrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.metrics.render())


def _log_failures(handler: tornado.web.RequestHandler) -> None:
    status = handler.get_status()
    if status >= 400:
        request = handler.request
        log.info("%s %s answered %d", request.method, request.path, status)


def make_app(
    service: AdmissionService,
    metrics: Metrics,
    *,
    pool: ThreadPoolExecutor,
    draining: asyncio.Event | None = None,
    limits: Limits | None = None,
    client_names: frozenset[str] | None = None,
) -> AdmissionRoutes:
    """The server's request delegate: the admission POSTs, then a tornado application for the rest."""
    refusals = [(path, _AdmissionRefusal) for path in ADMISSION_PATHS]
    application = tornado.web.Application(
        [
            *refusals,
            (r"/healthz", HealthHandler),
            (r"/readyz", HealthHandler, {"draining": draining}),
            (r"/metrics", _MetricsHandler, {"metrics": metrics}),
        ],
        log_function=_log_failures,
        compress_response=False,
    )
    return AdmissionRoutes(
        application, service, metrics, pool, limits=limits, client_names=client_names
    )


class WebhookServer:
    """Owns one server's listener (sockets, TLS context, thread pool) and metrics: ``start``, then
    ``stop``."""

    def __init__(
        self,
        service: AdmissionService,
        *,
        tls_cert: str | Path,
        tls_key: str | Path,
        port: int = 8443,
        address: str = "",
        metrics: Metrics | None = None,
        reload_seconds: float = 60.0,
        limits: Limits | None = None,
        client_ca: str | Path | None = None,
        client_names: frozenset[str] = frozenset(),
    ) -> None:
        """``limits`` bound the queued work; ``client_ca`` makes the admission paths require a
        client certificate it signed, with one of ``client_names`` (empty: any) as its subject
        common name or a DNS name."""
        self.service = service
        self.limits = limits or Limits()
        self._client_names = client_names if client_ca is not None else None
        self.metrics = metrics or Metrics()
        self._listener = HttpsListener(
            tls_cert=tls_cert,
            tls_key=tls_key,
            port=port,
            address=address,
            reload_seconds=reload_seconds,
            threads=_VALIDATION_THREADS,
            thread_name_prefix="bf-validate",
            log=log,
            client_ca=client_ca,
        )
        self.draining = self._listener.draining

    async def start(self) -> int:
        """Listen and serve; returns the bound port (useful with ``port=0``)."""
        return await self._listener.start(
            lambda pool: make_app(
                self.service,
                self.metrics,
                pool=pool,
                draining=self.draining,
                limits=self.limits,
                client_names=self._client_names,
            ),
            max_body_size=MAX_BODY_BYTES,
            idle_connection_timeout=120,
        )

    async def stop(self, *, grace_seconds: float = 5.0) -> None:
        """Stop accepting, let open requests finish for up to ``grace_seconds``, release everything.
        Safe to call twice."""
        await self._listener.stop(grace_seconds=grace_seconds)
