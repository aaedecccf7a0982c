"""The webhook's HTTPS server (tornado): ``POST /mutate``, ``POST /validate``, ``GET /healthz``,
``GET /readyz`` and ``GET /metrics``.

The admission POSTs are answered by ``routes.AdmissionRoutes`` straight from tornado's HTTP layer
(read the body, ask the ``AdmissionService``, write its reply, record metrics); it passes every other
request to the tornado application built here. Mutation runs on the event loop (pure and fast);
validation runs on a small thread pool when it may wait for the Kubernetes API. No access log per
request on the hot path: only failures are logged. The serving certificate is re-read when its files
change (cert-manager rotates them in place).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from bf_jupyter.cluster.webhook.metrics import Metrics
from bf_jupyter.cluster.webhook.review import Verdict, render_reply
from bf_jupyter.cluster.webhook.routes import ADMISSION_PATHS, AdmissionRoutes, Limits

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.service import AdmissionService

__all__ = ["WebhookServer", "make_app", "tls_context"]

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
            (r"/healthz", _HealthHandler),
            (r"/readyz", _HealthHandler, {"draining": draining}),
            (r"/metrics", _MetricsHandler, {"metrics": metrics}),
        ],
        log_function=_log_failures,
        compress_response=False,
    )
    return AdmissionRoutes(
        application, service, metrics, pool, limits=limits, client_names=client_names
    )


def tls_context(
    cert_file: str | Path, key_file: str | Path, client_ca: str | Path | None = None
) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2+) with the certificate chain and key; with ``client_ca`` it
    asks callers for a client certificate and verifies one that is presented against that CA
    (optional at the TLS layer so the kubelet's probes still connect; the admission paths require
    it). Raises ``OSError`` or ``ssl.SSLError`` when the files are missing or do not match."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class WebhookServer:
    """Owns one server's sockets, TLS context, thread pool and metrics: ``start``, then ``stop``."""

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
        self._client_ca = client_ca
        self._client_names = client_names if client_ca is not None else None
        self.metrics = metrics or Metrics()
        self.draining = asyncio.Event()
        self._cert, self._key = Path(tls_cert), Path(tls_key)
        self._port, self._address = port, address
        self._reload_seconds = reload_seconds
        self._stamp = self._cert_stamp()
        self._context = tls_context(self._cert, self._key, client_ca)
        self._pool: ThreadPoolExecutor | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._reloader: tornado.ioloop.PeriodicCallback | None = None

    async def start(self) -> int:
        """Listen and serve; returns the bound port (useful with ``port=0``)."""
        self._pool = ThreadPoolExecutor(_VALIDATION_THREADS, thread_name_prefix="bf-validate")
        app = make_app(
            self.service,
            self.metrics,
            pool=self._pool,
            draining=self.draining,
            limits=self.limits,
            client_names=self._client_names,
        )
        self._server = tornado.httpserver.HTTPServer(
            app,
            ssl_options=self._context,
            max_body_size=MAX_BODY_BYTES,
            idle_connection_timeout=120,
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
            # New handshakes use the new chain; connections already open keep theirs.
            self._context.load_cert_chain(str(self._cert), str(self._key))
        except (OSError, ssl.SSLError) as error:
            log.warning("serving certificate changed but cannot be loaded yet (%s)", error)
            return
        self._stamp = stamp
        log.info("serving certificate reloaded from %s", self._cert)
