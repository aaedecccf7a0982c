"""What one caller can queue is bounded, over real HTTPS: requests in progress, body bytes held and
validations waiting are refused with 429 past their bounds (and counted back to zero afterwards),
and with ``--client-ca`` the admission paths answer only a client certificate the CA signed."""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme

from bf_jupyter.cluster.webhook.app import WebhookServer
from bf_jupyter.cluster.webhook.config import WebhookConfig
from bf_jupyter.cluster.webhook.routes import Limits
from bf_jupyter.cluster.webhook.service import AdmissionService

from .conftest import GoodCluster, WebhookClient, admission_review, gpu, pod_with

INJECTED = {"auto-management/status": "injected"}


@contextmanager
def serving(
    tls_files: tuple[Path, Path, ssl.SSLContext], facts: GoodCluster, **options: Any
) -> Iterator[tuple[WebhookServer, int]]:
    cert, key, _ = tls_files
    server = WebhookServer(
        AdmissionService(WebhookConfig(), facts), tls_cert=cert, tls_key=key, port=0,
        address="127.0.0.1", **options,
    )  # fmt: skip
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server, asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    finally:
        if facts.gate is not None:
            facts.gate.set()
        asyncio.run_coroutine_threadsafe(server.stop(grace_seconds=2), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def validation_body(uid: str = "v") -> bytes:
    return admission_review(pod_with(gpu(), **INJECTED), uid=uid)


def settled(limits: Limits) -> bool:
    return (limits.requests, limits.body_bytes, limits.queued_validations) == (0, 0, 0)


def test_validations_past_the_queue_bound_are_refused_with_429(
    tls_files: tuple[Path, Path, ssl.SSLContext],
) -> None:
    facts = GoodCluster(gate=threading.Event())
    limits = Limits(max_queued_validations=1)
    with serving(tls_files, facts, limits=limits) as (server, port):
        first, second = WebhookClient(port, tls_files[2]), WebhookClient(port, tls_files[2])
        answers: list[tuple[int, dict[str, Any]]] = []
        waiting = threading.Thread(
            target=lambda: answers.append(first.review("/validate", validation_body("a")))
        )
        waiting.start()
        assert facts.waiting.wait(10)  # the first validation holds the only place in the queue
        status, reply = second.review("/validate", validation_body("b"))
        assert status == 429 and reply["response"]["allowed"] is False
        assert "busy" in reply["response"]["status"]["message"]
        assert facts.gate is not None
        facts.gate.set()
        waiting.join(10)
        assert answers[0][0] == 200 and answers[0][1]["response"]["uid"] == "a"
        assert server.metrics.count("validate", "busy") == 1
        status, _ = second.review("/validate", validation_body("c"))
        assert status == 200 and settled(server.limits)
        first.close()
        second.close()


def test_bodies_past_the_byte_bound_are_dropped_and_refused(
    tls_files: tuple[Path, Path, ssl.SSLContext],
) -> None:
    with serving(tls_files, GoodCluster(), limits=Limits(max_body_bytes=64 << 10)) as (
        server,
        port,
    ):
        client = WebhookClient(port, tls_files[2])
        pod = pod_with(gpu(), **INJECTED)
        pod["metadata"]["annotations"]["padding"] = "x" * (200 << 10)
        status, reply = client.review("/validate", admission_review(pod))
        assert status == 429 and reply["response"]["status"]["code"] == 429
        status, reply = client.review("/validate", validation_body("next"))  # same connection
        assert status == 200 and reply["response"]["uid"] == "next"
        assert settled(server.limits)
        client.close()


def test_requests_in_progress_past_the_bound_are_refused_until_they_end(
    tls_files: tuple[Path, Path, ssl.SSLContext],
) -> None:
    context = tls_files[2]
    with serving(tls_files, GoodCluster(), limits=Limits(max_requests=2)) as (server, port):
        # given two callers that send headers and half a body, then stall
        stalled = []
        for _ in range(2):
            raw = context.wrap_socket(
                socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"
            )
            raw.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            stalled.append(raw)
        client = WebhookClient(port, context)
        for _ in range(50):  # the server reads the stalled headers asynchronously
            status, _ = client.review("/validate", validation_body())
            if status == 429:
                break
        assert status == 429
        # when they hang up, their places are given back
        for raw in stalled:
            raw.close()
        for _ in range(50):
            status, _ = client.review("/validate", validation_body())
            if status == 200:
                break
        assert status == 200 and settled(server.limits)
        client.close()


@pytest.fixture(scope="module")
def client_ca() -> trustme.CA:
    return trustme.CA()


def test_with_a_client_ca_only_the_api_servers_certificate_is_answered(
    tls_files: tuple[Path, Path, ssl.SSLContext], client_ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "client-ca.crt"
    client_ca.cert_pem.write_to_path(str(ca_file))
    with serving(
        tls_files, GoodCluster(), client_ca=ca_file, client_names=frozenset({"kube-apiserver"})
    ) as (_, port):
        results: dict[str, object] = {}
        for label, name, ca in (
            ("none", None, None),
            ("apiserver", "kube-apiserver", client_ca),
            ("other name", "someone", client_ca),
            ("other CA", "kube-apiserver", trustme.CA()),
        ):
            context = trusting_context(tls_files)
            if name is not None and ca is not None:
                pem = tmp_path / f"{label}.pem"
                ca.issue_cert(name, common_name=name).private_key_and_cert_chain_pem.write_to_path(
                    str(pem)
                )
                context.load_cert_chain(str(pem))
            try:
                status, reply = WebhookClient(port, context).review("/validate", validation_body())
                results[label] = (status, reply["response"]["uid"])
            except (ssl.SSLError, ConnectionError, http.client.HTTPException):
                results[label] = "handshake refused"
        health = http.client.HTTPSConnection(
            "localhost", port, context=trusting_context(tls_files), timeout=10
        )
        health.request("GET", "/healthz")
        health_status = health.getresponse().status
        health.close()
    assert results["none"] == (401, "")
    assert results["apiserver"] == (200, "v")  # answered (the review's own verdict aside)
    assert results["other name"] == (403, "")
    assert results["other CA"] == "handshake refused"  # a certificate the CA did not sign
    assert health_status == 200  # the kubelet's probes present no certificate


def trusting_context(tls_files: tuple[Path, Path, ssl.SSLContext]) -> ssl.SSLContext:
    """A fresh client context trusting what the fixture's client context trusts."""
    return ssl.create_default_context(cadata=b"".join(tls_files[2].get_ca_certs(binary_form=True)))
