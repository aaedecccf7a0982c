"""The webhook over real HTTPS, as kube-apiserver calls it: an AdmissionReview fixture for every rule
and upstream defect, the patch applied to the pod, health, readiness, metrics, and a slow or absent
Kubernetes API."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable
from typing import Any

import jsonpatch
import pytest

from bf_jupyter.cluster.webhook.cluster_view import KubeClusterFacts
from bf_jupyter.cluster.webhook.service import AdmissionService

from .conftest import RunningWebhook, admission_review, gpu, pod_with

BIN = "/opt/bitfusion/bin/bitfusion"
Pod = dict[str, Any]


def mutate(webhook: RunningWebhook, pod: Pod, uid: str = "uid-1") -> tuple[dict[str, Any], Pod]:
    """POST /mutate; returns the response and the pod with its patch applied."""
    status, reply = webhook.client.review("/mutate", admission_review(pod, uid=uid))
    assert status == 200
    response = reply["response"]
    assert response["uid"] == uid
    patch = json.loads(base64.b64decode(response["patch"])) if "patch" in response else []
    return response, jsonpatch.apply_patch(pod, patch)


def main_of(pod: Pod) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "main")


# (case, pod, allowed, what must hold of the patched pod or of the denial message)
MUTATE_CASES: list[tuple[str, Pod, bool, Callable[[Pod, str], bool]]] = [
    ("unmanaged pod untouched", pod_with(gpu()), True, lambda p, m: main_of(p) == gpu()),
    (
        "argv, not a shell string (defect 1)",
        pod_with(
            gpu(command=["python", "-c", "print('a b')"]) | {"args": ["x y", "$HOME"]},
            **{"auto-management/bitfusion": "all"},
        ),
        True,
        lambda p, m: (
            main_of(p)["command"]
            == [
                BIN,
                "run",
                "-n",
                "1",
                "-p",
                "0.5",
                "--",
                "python",
                "-c",
                "print('a b')",
                "x y",
                "$HOME",
            ]
            and "args" not in main_of(p)
        ),
    ),
    (
        "user annotations kept (defect 2)",
        pod_with(gpu(), **{"auto-management/bitfusion": "all", "team": "vision"}),
        True,
        lambda p, m: (
            p["metadata"]["annotations"]["team"] == "vision"
            and p["metadata"]["annotations"]["auto-management/status"] == "injected"
        ),
    ),
    (
        "existing init containers kept (defect 3)",
        pod_with(gpu(), **{"auto-management/bitfusion": "all"})
        | {
            "spec": {
                "containers": [gpu()],
                "initContainers": [{"name": "first", "image": "busybox"}],
            }
        },
        True,
        lambda p, m: (
            [c["name"] for c in p["spec"]["initContainers"]] == ["first", "bf-jupyter-client-init"]
        ),
    ),
    (
        "every GPU container of a multi-container pod (defect 4)",
        pod_with(
            gpu("a"), gpu("main", amount="2", percent="25"), **{"auto-management/bitfusion": "all"}
        ),
        True,
        lambda p, m: (
            main_of(p)["command"][:6] == [BIN, "run", "-n", "2", "-p", "0.25"]
            and p["spec"]["containers"][0]["command"][:6] == [BIN, "run", "-n", "1", "-p", "0.5"]
        ),
    ),
    (
        "a container without keys is not denied (defect 5)",
        pod_with(
            gpu(),
            {"name": "side", "image": "busybox", "command": ["sleep", "1"]},
            **{"auto-management/bitfusion": "all"},
        ),
        True,
        lambda p, m: (
            p["spec"]["containers"][1]
            == {"name": "side", "image": "busybox", "command": ["sleep", "1"]}
        ),
    ),
    (
        "memory mode priced with the per-GPU memory (defect 6)",
        pod_with(gpu(amount="1", memory="4Gi"), **{"auto-management/bitfusion": "all"}),
        True,
        lambda p, m: (
            main_of(p)["resources"]["limits"]["bitfusion.io/gpu"] == "25"
            and main_of(p)["command"][4:6] == ["-m", "4096"]
        ),
    ),
    (
        "no command is denied, not skipped (defect 10)",
        pod_with(gpu(command=[]), **{"auto-management/bitfusion": "all"}),
        False,
        lambda p, m: "set `command`" in m,
    ),
    (
        "unknown client pair denied naming the known ones",
        pod_with(gpu(), **{"auto-management/bitfusion": "all", "bitfusion-client/os": "ubuntu99"}),
        False,
        lambda p, m: "ubuntu20/450" in m,
    ),
    (
        "injection mode leaves the command",
        pod_with(gpu(), **{"auto-management/bitfusion": "injection"}),
        True,
        lambda p, m: (
            main_of(p)["command"] == ["python", "train.py"]
            and main_of(p)["resources"]["limits"] == {"bitfusion.io/gpu": "50"}
            and main_of(p)["resources"]["requests"] == {"bitfusion.io/gpu": "50"}
        ),
    ),
    (
        "bad slice value denied naming the field",
        pod_with(gpu(amount="1", percent="150"), **{"auto-management/bitfusion": "all"}),
        False,
        lambda p, m: "gpu-percent 150 is out of range: use 1–100" in m,
    ),
]


@pytest.mark.parametrize(
    ("case", "pod", "allowed", "holds"), MUTATE_CASES, ids=[c[0] for c in MUTATE_CASES]
)
def test_mutate_over_https(
    webhook: RunningWebhook, case: str, pod: Pod, allowed: bool, holds: Callable[[Pod, str], bool]
) -> None:
    response, patched = mutate(webhook, pod)
    assert response["allowed"] is allowed
    message = response.get("status", {}).get("message", "")
    assert holds(patched, message), (case, response)
    if allowed:  # and a second pass (reinvocation) changes nothing
        again, _ = mutate(webhook, patched, uid="uid-2")
        assert again["allowed"] and "patch" not in again


def test_validate_over_https_accepts_what_mutate_produced_and_refuses_what_it_missed(
    webhook: RunningWebhook,
) -> None:
    pod = pod_with(gpu(amount="2", percent="50"), **{"auto-management/bitfusion": "all"})
    _, patched = mutate(webhook, pod)
    status, reply = webhook.client.review("/validate", admission_review(patched, uid="v-1"))
    assert status == 200 and reply["response"] == {"uid": "v-1", "allowed": True}
    status, reply = webhook.client.review("/validate", admission_review(pod, uid="v-2"))
    assert status == 200 and reply["response"]["allowed"] is False
    assert "did not process the pod" in reply["response"]["status"]["message"]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{", 400), (b"", 400), (b'{"kind": "AdmissionReview"}', 400), (b"\x00\xff", 400)],
)
def test_broken_bodies_get_an_admission_review_with_a_client_error(
    webhook: RunningWebhook, body: bytes, status: int
) -> None:
    for path in ("/mutate", "/validate"):
        got, reply = webhook.client.review(path, body)
        assert got == status
        assert reply["kind"] == "AdmissionReview" and reply["response"]["allowed"] is False


def test_other_kinds_and_operations_are_allowed_untouched(webhook: RunningWebhook) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    kind = {"group": "apps", "version": "v1", "kind": "Deployment"}
    status, reply = webhook.client.review("/mutate", admission_review(deployment, kind=kind))
    assert status == 200 and reply["response"] == {"uid": "uid-1", "allowed": True}
    pod = pod_with(gpu(), **{"auto-management/bitfusion": "all"})
    status, reply = webhook.client.review("/mutate", admission_review(pod, operation="UPDATE"))
    assert reply["response"] == {"uid": "uid-1", "allowed": True}


def test_healthz_and_readyz_answer_ok(webhook: RunningWebhook) -> None:
    assert webhook.client.request("GET", "/healthz") == (200, b"ok\n")
    assert webhook.client.request("GET", "/readyz") == (200, b"ok\n")


def test_readyz_turns_unready_while_draining(webhook: RunningWebhook) -> None:
    webhook.loop.call_soon_threadsafe(webhook.server.draining.set)
    try:
        assert webhook.new_client().request("GET", "/readyz")[0] == 503
        assert webhook.new_client().request("GET", "/healthz")[0] == 200
    finally:
        webhook.loop.call_soon_threadsafe(webhook.server.draining.clear)


def test_metrics_count_requests_denials_and_latency(webhook: RunningWebhook) -> None:
    before = webhook.metrics.count("mutate", "denied")
    mutate(webhook, pod_with(gpu(command=[]), **{"auto-management/bitfusion": "all"}))
    status, text = webhook.client.request("GET", "/metrics")
    assert status == 200
    lines = text.decode().splitlines()
    assert f'bf_webhook_requests_total{{endpoint="mutate",outcome="denied"}} {before + 1}' in lines
    assert f'bf_webhook_denials_total{{endpoint="mutate"}} {before + 1}' in lines
    assert any(
        line.startswith('bf_webhook_request_duration_seconds_bucket{endpoint="mutate",le="+Inf"}')
        for line in lines
    )
    assert "# TYPE bf_webhook_request_duration_seconds histogram" in lines


def test_a_slow_cluster_api_never_holds_up_mutation_or_health(webhook: RunningWebhook) -> None:
    # given a validation whose cluster facts are stuck until released
    gate = threading.Event()
    webhook.facts.gate, webhook.facts.waiting = gate, threading.Event()
    pod = pod_with(gpu(), **{"auto-management/bitfusion": "all"})
    _, patched = mutate(webhook, pod)
    results: list[tuple[int, dict[str, Any]]] = []
    stuck = threading.Thread(
        target=lambda: results.append(
            webhook.new_client().review("/validate", admission_review(patched))
        )
    )
    stuck.start()
    try:
        assert webhook.facts.waiting.wait(10)
        # when other requests arrive meanwhile, then they are answered
        assert webhook.client.request("GET", "/healthz")[0] == 200
        assert mutate(webhook, pod)[0]["allowed"]
    finally:
        gate.set()
        stuck.join(10)
        webhook.facts.gate = None
    assert results[0][1]["response"]["allowed"] is True


def test_an_unreachable_api_skips_cluster_checks_with_a_warning_and_a_metric(
    webhook: RunningWebhook,
) -> None:
    from kubernetes import client

    from bf_jupyter.kubeapi import KubeApi

    # given facts from a real API client pointed at a port where nothing listens
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:9"
    configuration.retries = 0  # as the webhook command connects
    api = KubeApi(client.ApiClient(configuration), request_timeout=2)
    service = AdmissionService(webhook.server.service.config, KubeClusterFacts(api))
    _, patched = mutate(webhook, pod_with(gpu(), **{"auto-management/bitfusion": "all"}))
    reply = service.validate(admission_review(patched))
    api.close()
    response = json.loads(reply.body)["response"]
    assert response["allowed"] is True and reply.skipped == ("capacity", "quota", "token Secret")
    assert any("Kubernetes API unreachable" in w for w in response["warnings"])
    # and the server counts skipped checks
    webhook.facts.unavailable = "no Kubernetes API configured"
    try:
        webhook.client.review("/validate", admission_review(patched))
    finally:
        webhook.facts.unavailable = None
    text = webhook.client.request("GET", "/metrics")[1].decode()
    assert 'bf_webhook_cluster_checks_skipped_total{check="quota"}' in text


def test_the_server_stops_and_releases_its_port(tls_files: Any) -> None:
    cert, key, _context = tls_files
    from bf_jupyter.cluster.webhook.app import WebhookServer
    from bf_jupyter.cluster.webhook.cluster_view import NoClusterFacts
    from bf_jupyter.cluster.webhook.config import WebhookConfig

    async def start_and_stop() -> int:
        server = WebhookServer(
            AdmissionService(WebhookConfig(), NoClusterFacts("stand-alone")),
            tls_cert=cert, tls_key=key, port=0, address="127.0.0.1",
        )  # fmt: skip
        port = await server.start()
        await server.stop()
        await server.stop()  # idempotent
        return port

    port = asyncio.run(start_and_stop())
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # the port is free again
