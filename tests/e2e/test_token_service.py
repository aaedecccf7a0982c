"""End to end on a real control plane in token-service mode (``tokenSource: service``, the shipped
default): user namespaces hold no token, the token service hands it only to admitted pods.

Needs what only a real cluster has: the API server's TokenReview and TokenRequest, the kubelet's
projected service-account tokens, and the deployed ``bf-token-service``: the test cluster has them
all (the Service is reached at its cluster IP there); with ``BF_E2E_KUBECONFIG`` they run against
that cluster through ``kubectl port-forward`` (kubectl on PATH).
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.contract import ANNOTATION_MANAGEMENT, RESOURCE_AMOUNT, RESOURCE_PERCENT
from bf_jupyter.kubeapi import KubeApiError
from tests.support.cluster_fixtures import real_kubeconfig

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle

pytestmark = pytest.mark.skipif(
    real_kubeconfig() is not None and shutil.which("kubectl") is None,
    reason="on a real cluster these tests use kubectl (port-forward, debug): put it on PATH",
)

Obj = dict[str, Any]
AUDIENCE = "bf-jupyter-token-service"
SERVICE_NAME = "bf-token-service.bf-system.svc"


@pytest.fixture
def tokenless(cluster: ClusterHandle, namespace: str) -> str:
    """The test namespace without the Secret copy the e2e fixtures make for secret mode."""
    cluster.delete_quietly("Secret", "bitfusion-secret", namespace)
    return namespace


def kubectl(cluster: ClusterHandle, *args: str, **run: Any) -> subprocess.CompletedProcess[str]:
    """The test cluster's pinned kubectl, or ``kubectl`` on PATH for a real cluster."""
    from tests.cluster.binaries import find_binaries

    binary = str(find_binaries().kubectl) if cluster.control_plane is not None else "kubectl"
    return subprocess.run(
        [binary, "--kubeconfig", str(cluster.kubeconfig), *args],
        check=run.pop("check", False), capture_output=True, text=True, timeout=60, **run,
    )  # fmt: skip


@pytest.fixture(scope="module")
def token_service(cluster: ClusterHandle) -> Iterator[tuple[str, int, ssl.SSLContext]]:
    """Where the token service answers (its cluster IP on the test cluster, else a
    ``kubectl port-forward``), and a TLS context trusting its CA."""
    secret = cluster.api.get("Secret", "bf-token-service-tls", "bf-system")
    context = ssl.create_default_context(cadata=base64.b64decode(secret["data"]["ca.crt"]).decode())
    if cluster.control_plane is not None:
        service = cluster.api.get("Service", "bf-token-service", "bf-system")
        yield service["spec"]["clusterIP"], 443, context
        return
    kubeconfig = str(cluster.kubeconfig)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    forward = subprocess.Popen(
        ["kubectl", "--kubeconfig", kubeconfig, "-n", "bf-system", "port-forward",
         "svc/bf-token-service", f"{port}:443"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert forward.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        yield "127.0.0.1", port, context
    finally:
        forward.terminate()
        forward.wait(10)


def ask_token_service(service: tuple[str, int, ssl.SSLContext], token: str) -> tuple[int, Obj]:
    """POST /v1/token to the service, verifying the certificate for the Service's name."""
    host, port, context = service
    raw = socket.create_connection((host, port), timeout=10)
    tls = context.wrap_socket(raw, server_hostname=SERVICE_NAME)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.sock = tls
    try:
        connection.request(
            "POST", "/v1/token", body=b"", headers={"Authorization": f"Bearer {token}"}
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def bound_token(cluster: ClusterHandle, namespace: str, pod: Obj, audience: str) -> str:
    """A service-account token bound to ``pod`` for ``audience`` (TokenRequest, as kubectl makes it)."""
    return kubectl(
        cluster, "-n", namespace, "create", "token",
        pod["spec"].get("serviceAccountName") or "default", "--audience", audience,
        "--bound-object-kind", "Pod", "--bound-object-name", pod["metadata"]["name"],
        "--bound-object-uid", pod["metadata"]["uid"], "--duration", "10m", check=True,
    ).stdout.strip()  # fmt: skip


def plain_pod(name: str) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "300"]}]},
    }  # fmt: skip


def gpu_pod(name: str) -> Obj:
    return {
        "metadata": {"name": name, "annotations": {ANNOTATION_MANAGEMENT: "all"}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "train", "image": "busybox", "command": ["sleep", "300"],
            "resources": {"limits": {RESOURCE_AMOUNT: "1", RESOURCE_PERCENT: "50"}},
        }]},
    }  # fmt: skip


def test_a_pod_mounting_bitfusion_secret_directly_has_nothing_to_mount(
    cluster: ClusterHandle, tokenless: str
) -> None:
    # given a pod that asks for nothing of Bitfusion but mounts the token Secret by name
    pod = plain_pod("thief")
    pod["spec"]["volumes"] = [{"name": "t", "secret": {"secretName": "bitfusion-secret"}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "t", "mountPath": "/t"}]
    # then the validating webhook refuses it; were it admitted, the namespace holds no such Secret
    with pytest.raises(KubeApiError) as refused:
        cluster.api.create("Pod", pod, tokenless)
    assert "bitfusion-secret" in str(refused.value)
    with pytest.raises(KubeApiError) as missing:
        cluster.api.get("Secret", "bitfusion-secret", tokenless)
    assert missing.value.not_found


def test_an_admitted_pod_fetches_the_token_without_a_secret_in_its_namespace(
    cluster: ClusterHandle, tokenless: str
) -> None:
    created = cluster.api.create("Pod", gpu_pod("train"), tokenless)
    init = [c["name"] for c in created["spec"]["initContainers"]]
    assert init[0] == "bf-jupyter-token-fetch"
    pod = cluster.wait_for_pod(
        tokenless, "train", lambda p: p["status"].get("phase") == "Running", timeout=180
    )
    statuses = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    assert statuses["bf-jupyter-token-fetch"]["state"]["terminated"]["exitCode"] == 0


def test_the_token_service_refuses_a_pod_that_was_not_injected(
    cluster: ClusterHandle, tokenless: str, token_service: tuple[str, int, ssl.SSLContext]
) -> None:
    pod = cluster.api.create("Pod", plain_pod("plain"), tokenless)
    status, answer = ask_token_service(
        token_service, bound_token(cluster, tokenless, pod, AUDIENCE)
    )
    assert status == 403 and "auto-management/status" in answer["error"]


def test_the_token_service_refuses_a_token_for_another_audience(
    cluster: ClusterHandle, tokenless: str, token_service: tuple[str, int, ssl.SSLContext]
) -> None:
    pod = cluster.api.create("Pod", gpu_pod("train"), tokenless)
    token = bound_token(cluster, tokenless, pod, "https://kubernetes.default.svc")
    status, answer = ask_token_service(token_service, token)
    assert status == 401 and AUDIENCE in answer["error"]


def test_the_token_service_refuses_the_token_of_a_deleted_pod(
    cluster: ClusterHandle, tokenless: str, token_service: tuple[str, int, ssl.SSLContext]
) -> None:
    pod = cluster.api.create("Pod", gpu_pod("train"), tokenless)
    token = bound_token(cluster, tokenless, pod, AUDIENCE)
    cluster.api.delete("Pod", "train", tokenless, grace_period_seconds=0)
    cluster.wait_for_pod_gone(tokenless, "train")
    status, _ = ask_token_service(token_service, token)
    assert status in (401, 403)  # the API server invalidates a bound token with its pod


def test_a_debug_container_cannot_mount_the_service_account_token(
    cluster: ClusterHandle, tokenless: str
) -> None:
    cluster.api.create("Pod", gpu_pod("train"), tokenless)
    result = kubectl(
        cluster, "-n", tokenless, "debug", "train",
        "--image", "busybox", "--profile", "general", "--custom", "/dev/stdin", "--", "true",
        input=json.dumps({"volumeMounts": [{"name": "bf-jupyter-token-service-account",
                                            "mountPath": "/sa"}]}),
        check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "bf-jupyter-token-service-account" in result.stderr
