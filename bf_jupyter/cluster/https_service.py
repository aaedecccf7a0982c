"""The HTTPS serving scaffolding the cluster daemons share (the admission webhook, the token service).

``HttpsListener`` owns one server's sockets, TLS context (re-read when its files change: cert-manager
rotates them in place), worker thread pool and draining flag; the daemon supplies the request
delegate and tornado's bounds. ``HealthHandler`` answers ``/healthz`` and ``/readyz`` (503 while
draining). The command-line side is ``https_command``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.netutil
import tornado.web

__all__ = [
    "HealthHandler",
    "HttpsListener",
    "tls_context",
]


def tls_context(
    cert_file: str | Path, key_file: str | Path, client_ca: str | Path | None = None
) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2+) with the certificate chain and key; with ``client_ca`` it
    asks callers for a client certificate and verifies one that is presented against that CA
    (optional at the TLS layer so the kubelet's probes still connect; the caller's routes decide
    which paths require it). Raises ``OSError`` or ``ssl.SSLError`` when the files are missing or
    do not match."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class HealthHandler(tornado.web.RequestHandler):
    """``/healthz`` (no ``draining``: always ok) and ``/readyz`` (503 once ``draining`` is set)."""

    def initialize(self, *, draining: asyncio.Event | None = None) -> None:
        self.draining = draining

    def get(self) -> None:
        if self.draining is not None and self.draining.is_set():
            self.set_status(503)
            self.finish("draining\n")
            return
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("ok\n")


class HttpsListener:
    """One HTTPS server's sockets, TLS context, worker pool and draining flag: ``start``, then
    ``stop``. Messages go to ``log``, the daemon's logger."""

    def __init__(
        self,
        *,
        tls_cert: str | Path,
        tls_key: str | Path,
        port: int,
        address: str,
        reload_seconds: float,
        threads: int,
        thread_name_prefix: str,
        log: logging.Logger,
        client_ca: str | Path | None = None,
    ) -> None:
        """Loads the TLS files now: raises ``OSError`` or ``ssl.SSLError`` when they are missing or
        do not match."""
        self.draining = asyncio.Event()
        self._cert, self._key = Path(tls_cert), Path(tls_key)
        self._port, self._address = port, address
        self._reload_seconds = reload_seconds
        self._threads, self._thread_name_prefix = threads, thread_name_prefix
        self._log = log
        self._stamp = self._cert_stamp()
        self._context = tls_context(self._cert, self._key, client_ca)
        self._pool: ThreadPoolExecutor | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._reloader: tornado.ioloop.PeriodicCallback | None = None

    async def start(
        self,
        delegate_for: Callable[[ThreadPoolExecutor], tornado.httputil.HTTPServerConnectionDelegate],
        **server_options: Any,
    ) -> int:
        """Listen and serve what ``delegate_for(pool)`` returns, with tornado's ``HTTPServer``
        bounds in ``server_options``; returns the bound port (useful with ``port=0``)."""
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=self._thread_name_prefix)
        self._server = tornado.httpserver.HTTPServer(
            delegate_for(self._pool), ssl_options=self._context, **server_options
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
                self._log.warning(
                    "connections still open after %.0f s; closing anyway", grace_seconds
                )
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
            self._log.warning("serving certificate changed but cannot be loaded yet (%s)", error)
            return
        self._stamp = stamp
        self._log.info("serving certificate reloaded from %s", self._cert)
