"""The kubelet API that kube-apiserver proxies ``pods/log`` to: HTTPS on 127.0.0.1 with a serving
certificate from the control plane's CA, and only clients whose certificate that CA signed (the
apiserver's ``--kubelet-client-certificate``) are served; any other TLS client fails the handshake.

Routes: ``GET /containerLogs/<namespace>/<pod>/<container>`` with the query the apiserver forwards
(``follow``, ``tailLines``, ``previous``, ``timestamps``, ``limitBytes``), and ``GET /healthz``.
A container that has no log yet answers 400 with the kubelet's sentence, which the apiserver hands to
the client (``kubectl logs`` prints it after "Error from server (BadRequest):").
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

from tests.cluster.kubelet.container_logs import ContainerLog

__all__ = ["FindLog", "KubeletServer", "LogUnavailable"]


class LogUnavailable(Exception):
    """A container has no such log; the message is the kubelet's (served as a 400)."""


# (namespace, pod, container, previous) → the log, or raises LogUnavailable
FindLog = Callable[[str, str, str, bool], ContainerLog]


class _ContainerLogs(tornado.web.RequestHandler):
    def initialize(self, find: FindLog) -> None:
        self.find = find

    async def get(self, namespace: str, pod: str, container: str) -> None:
        def flag(name: str) -> bool:
            return self.get_query_argument(name, "") in ("true", "1")

        try:
            tail = _optional_int(self.get_query_argument("tailLines", ""), "tailLines")
            limit = _optional_int(self.get_query_argument("limitBytes", ""), "limitBytes")
            log = self.find(namespace, pod, container, flag("previous"))
        except LogUnavailable as error:
            self.set_status(400)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(str(error))
            return
        self.set_header("Content-Type", "text/plain")
        chunks: AsyncIterator[bytes] = log.read(
            follow=flag("follow"), tail=tail, timestamps=flag("timestamps"), limit_bytes=limit
        )
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            async for chunk in chunks:
                self.write(chunk)
                await self.flush()
            self.finish()


class _Healthz(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish("ok")


def _optional_int(text: str, name: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise LogUnavailable(f"{name} must be an integer, not {text!r}") from None


class KubeletServer:
    def __init__(
        self, find: FindLog, *, cert_pem: bytes, key_pem: bytes, client_ca_pem: bytes
    ) -> None:
        self._app = tornado.web.Application(
            [
                (r"/containerLogs/([^/]+)/([^/]+)/([^/]+)", _ContainerLogs, {"find": find}),
                (r"/healthz", _Healthz),
            ]
        )
        self._context = _tls_context(cert_pem, key_pem, client_ca_pem)
        self._server: tornado.httpserver.HTTPServer | None = None
        self.port = 0

    def start(self) -> int:
        """Listen on a free port of 127.0.0.1 (on the running loop); returns the port."""
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = int(sockets[0].getsockname()[1])
        self._server = tornado.httpserver.HTTPServer(self._app, ssl_options=self._context)
        self._server.add_sockets(sockets)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            with contextlib.suppress(Exception):
                await self._server.close_all_connections()
            self._server = None


def _tls_context(cert_pem: bytes, key_pem: bytes, client_ca_pem: bytes) -> Any:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads files only: write the pair to a private temporary directory
    with tempfile.TemporaryDirectory(prefix="bf-kubelet-tls-") as folder:
        cert, key = Path(folder) / "tls.crt", Path(folder) / "tls.key"
        cert.write_bytes(cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(key_pem)
        context.load_cert_chain(cert, key)
    context.load_verify_locations(cadata=client_ca_pem.decode())
    context.verify_mode = ssl.CERT_REQUIRED
    return context
