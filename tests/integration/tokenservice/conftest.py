"""The real token service over HTTPS against a fake API server (plain HTTP on localhost) that answers
TokenReviews, pods and the token Secret the way kube-apiserver does, through the official client."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme

from bf_jupyter.cluster.tokenservice.app import TokenServer
from bf_jupyter.cluster.tokenservice.authority import KubeTokenAuthority
from bf_jupyter.cluster.tokenservice.issuer import TokenIssuer
from bf_jupyter.cluster.webhook.config import TokenSource, WebhookConfig
from bf_jupyter.kubeapi import KubeApi

AUDIENCE = "bf-jupyter-token-service"
TOKEN_TEXT = {"ca.crt": b"-- bitfusion ca --", "client.yaml": b"token: s3cr3t-bitfusion\n",
              "servers.conf": b"servers: []\n"}  # fmt: skip
Obj = dict[str, Any]


@dataclass
class IssuedToken:
    """A service-account token the fake API server knows: its audiences and the pod it is bound to."""

    audiences: list[str]
    namespace: str
    account: str
    pod_name: str | None
    pod_uid: str | None


@dataclass
class FakeApiServer:
    """TokenReview (create), Pod (get), Secret (get) from memory; records what was asked."""

    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    pods: dict[tuple[str, str], Obj] = field(default_factory=dict)
    secrets: dict[tuple[str, str], Obj] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    url: str = ""

    def review(self, body: Obj) -> Obj:
        spec = body.get("spec") or {}
        wanted = spec.get("audiences") or ["https://kubernetes.default.svc"]
        issued = self.tokens.get(spec.get("token", ""))
        status: Obj = {"authenticated": False, "error": "invalid bearer token"}
        if issued is not None:
            granted = [a for a in wanted if a in issued.audiences]
            if granted:
                extra = {}
                if issued.pod_name:
                    extra["authentication.kubernetes.io/pod-name"] = [issued.pod_name]
                if issued.pod_uid:
                    extra["authentication.kubernetes.io/pod-uid"] = [issued.pod_uid]
                status = {
                    "authenticated": True,
                    "audiences": granted,
                    "user": {
                        "username": f"system:serviceaccount:{issued.namespace}:{issued.account}",
                        "uid": "sa-uid",
                        "groups": ["system:serviceaccounts"],
                        "extra": extra,
                    },
                }
            else:
                status["error"] = "token audiences are invalid for the target audiences"
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}  # fmt: skip


def _handler(fake: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: Obj) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _missing(self, kind: str, name: str) -> None:
            self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "message": f'{kind} "{name}" not found', "reason": "NotFound",
                              "code": 404})  # fmt: skip

        def do_POST(self) -> None:
            path = self.path.partition("?")[0]
            body = json.loads(
                self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}"
            )
            if path == "/apis/authentication.k8s.io/v1/tokenreviews":
                fake.asked.append("tokenreview " + ",".join(body["spec"].get("audiences", [])))
                self._reply(201, fake.review(body))
                return
            self._missing("path", path)

        def do_GET(self) -> None:
            parts = self.path.partition("?")[0].strip("/").split("/")
            if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"]:
                namespace, plural, name = parts[3], parts[4], parts[5]
                table = {"pods": fake.pods, "secrets": fake.secrets}.get(plural)
                if table is not None:
                    fake.asked.append(f"{plural} {namespace}/{name}")
                    obj = table.get((namespace, name))
                    if obj is None:
                        self._missing(plural, name)
                    else:
                        self._reply(200, obj)
                    return
            self._missing("path", self.path)

    return Handler


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeApiServer]:
    fake = FakeApiServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, name="fake-apiserver", daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    fake.secrets[("bf-system", "bitfusion-secret")] = {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bitfusion-secret", "namespace": "bf-system"},
        "data": {name: base64.b64encode(value).decode() for name, value in TOKEN_TEXT.items()},
    }  # fmt: skip
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class RunningTokenService:
    port: int
    url: str
    client_context: ssl.SSLContext
    ca_pem: str
    config: WebhookConfig
    server: TokenServer
    loop: asyncio.AbstractEventLoop


@pytest.fixture(scope="module")
def token_service(
    fake_api: FakeApiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningTokenService]:
    folder = tmp_path_factory.mktemp("token-service")
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = folder / "tls.crt", folder / "tls.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca_pem = ca.cert_pem.bytes().decode()
    kubeconfig = folder / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": fake_api.url}}],
        "users": [{"name": "svc", "user": {"token": "service-credential"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "svc"}}],
    }))  # fmt: skip
    config = WebhookConfig(
        per_gpu_memory_bytes=16 << 30,
        token_source=TokenSource.SERVICE,
        token_service_ca=ca_pem,
        token_service_url="https://localhost",
    )
    api = KubeApi.connect(kubeconfig=str(kubeconfig), request_timeout=5, retries=0)
    authority = KubeTokenAuthority(api, namespace="bf-system", secret=config.token_secret)
    server = TokenServer(TokenIssuer(config, authority), tls_cert=cert, tls_key=key, port=0,
                         address="127.0.0.1")  # fmt: skip
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="token-service-loop", daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    context = ssl.create_default_context(cadata=ca_pem)
    try:
        yield RunningTokenService(port, f"https://localhost:{port}", context, ca_pem, config,
                                  server, loop)  # fmt: skip
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(grace_seconds=2), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        api.close()
        assert not thread.is_alive()
