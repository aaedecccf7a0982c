"""A real webhook server over HTTPS (certificate from a ``trustme`` CA) on its own event-loop thread,
and a keep-alive HTTPS client that talks to it the way kube-apiserver does."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from bf_jupyter.cluster.webhook.app import WebhookServer
from bf_jupyter.cluster.webhook.config import WebhookConfig
from bf_jupyter.cluster.webhook.metrics import Metrics
from bf_jupyter.cluster.webhook.service import AdmissionService
from bf_jupyter.cluster.webhook.validate import FactUnavailable, QuotaLeft

GIB = 1 << 30
POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}


def admission_review(
    pod: Any, *, uid: str = "uid-1", namespace: str = "team-a", **request: Any
) -> bytes:
    """An AdmissionReview for creating ``pod``, as kube-apiserver sends it."""
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": POD_KIND,
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": POD_KIND,
            "operation": "CREATE",
            "namespace": namespace,
            "userInfo": {"username": "ana"},
            "object": pod,
            "dryRun": False,
            **request,
        },
    }
    return json.dumps(body).encode()


@dataclass
class GoodCluster:
    """Facts of a healthy cluster; ``gate`` (when set) holds every call until it is released."""

    blocking: bool = True
    gate: threading.Event | None = None
    waiting: threading.Event = field(default_factory=threading.Event)
    unavailable: str | None = None

    def _ask(self) -> None:
        if self.gate is not None:
            self.waiting.set()
            self.gate.wait(10)
        if self.unavailable:
            raise FactUnavailable(self.unavailable)

    def quotas(self, namespace: str) -> tuple[QuotaLeft, ...]:
        self._ask()
        return (QuotaLeft("gpus", 10**9, 0),)

    def largest_node_units(self) -> int:
        self._ask()
        return 10**9

    def token_secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        self._ask()
        return frozenset({"ca.crt", "client.yaml", "servers.conf"})


class WebhookClient:
    """A keep-alive HTTPS connection to the server (reopened if the server closed it)."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port = port
        self.context = context
        self._connection: http.client.HTTPSConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPSConnection(
                    "localhost", self.port, context=self.context, timeout=10
                )
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def review(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        status, raw = self.request("POST", path, body)
        return status, json.loads(raw)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass
class RunningWebhook:
    server: WebhookServer
    loop: asyncio.AbstractEventLoop
    client: WebhookClient
    metrics: Metrics
    facts: GoodCluster
    new_client: Callable[[], WebhookClient]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ssl.SSLContext]:
    """A serving certificate for localhost from a trustme CA, and a client context trusting that CA."""
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "tls.crt", folder / "tls.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    for blob in issued.cert_chain_pems[1:]:
        blob.write_to_path(str(cert), append=True)
    issued.private_key_pem.write_to_path(str(key))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return cert, key, client_context


@pytest.fixture(scope="module")
def webhook(tls_files: tuple[Path, Path, ssl.SSLContext]) -> Iterator[RunningWebhook]:
    """The real server on an ephemeral port, its event loop on a thread; stopped after the module."""
    cert, key, context = tls_files
    facts = GoodCluster()
    config = WebhookConfig(per_gpu_memory_bytes=16 * GIB, max_gpus_per_server=8)
    metrics = Metrics(cluster_api=True)
    server = WebhookServer(
        AdmissionService(config, facts), tls_cert=cert, tls_key=key, port=0,
        address="127.0.0.1", metrics=metrics,
    )  # fmt: skip
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="webhook-loop", daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    clients: list[WebhookClient] = []

    def new_client() -> WebhookClient:
        clients.append(WebhookClient(port, context))
        return clients[-1]

    try:
        yield RunningWebhook(server, loop, new_client(), metrics, facts, new_client)
    finally:
        for client in clients:
            client.close()
        asyncio.run_coroutine_threadsafe(server.stop(grace_seconds=2), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        assert not thread.is_alive()


def pod_with(*containers: dict[str, Any], **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "team-a", "annotations": annotations},
        "spec": {"containers": list(containers)},
    }


def gpu(name: str = "main", *, command: list[str] | None = None, **limits: str) -> dict[str, Any]:
    keys = {
        f"bitfusion.io/gpu-{k}": v for k, v in (limits or {"amount": "1", "percent": "50"}).items()
    }
    return {
        "name": name,
        "image": "tensorflow/tensorflow:2.16.1-gpu",
        "command": ["python", "train.py"] if command is None else command,
        "resources": {"limits": keys},
    }
