"""A token-service site configuration and pods as the webhook leaves them, with the identity the API
server gives a running pod."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpatch
import pytest

from bf_jupyter.cluster.webhook.config import TokenSource, WebhookConfig
from bf_jupyter.cluster.webhook.mutate import mutate_pod

GIB = 1 << 30
AUDIENCE = "bf-jupyter-token-service"
FAKE_CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
Pod = dict[str, Any]


@pytest.fixture
def config() -> WebhookConfig:
    return WebhookConfig(
        per_gpu_memory_bytes=16 * GIB,
        token_source=TokenSource.SERVICE,
        token_service_ca=FAKE_CA,
        token_audience=AUDIENCE,
    )


def gpu_container(name: str = "main", **limits: str) -> dict[str, Any]:
    keys = {
        f"bitfusion.io/gpu-{k}": v for k, v in (limits or {"amount": "1", "percent": "50"}).items()
    }
    return {
        "name": name,
        "image": "tensorflow/tensorflow:2.16.1-gpu",
        "command": ["python", "train.py"],
        "resources": {"limits": keys},
    }


@pytest.fixture
def admitted(config: WebhookConfig) -> Callable[..., Pod]:
    """``admitted(*containers, management="all")``: the pod as created through the mutating
    webhook, then given the uid, namespace, service account and phase the API server sets."""

    def build(*containers: dict[str, Any], management: str = "all", uid: str = "uid-1") -> Pod:
        pod: Pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "train",
                "namespace": "team-a",
                "annotations": {"auto-management/bitfusion": management},
            },
            "spec": {"containers": list(containers or [gpu_container()])},
        }
        verdict = mutate_pod(pod, config)
        assert verdict.allowed, verdict.problems
        result: Pod = jsonpatch.apply_patch(pod, list(verdict.patch))
        result["metadata"]["uid"] = uid
        result["spec"]["serviceAccountName"] = "default"
        result["status"] = {"phase": "Pending"}
        return result

    return build


def review(
    *,
    authenticated: bool = True,
    audiences: list[str] | None = None,
    username: str = "system:serviceaccount:team-a:default",
    pod_name: str | None = "train",
    pod_uid: str | None = "uid-1",
) -> dict[str, Any]:
    """A TokenReview as the API server answers it."""
    extra: dict[str, list[str]] = {}
    if pod_name is not None:
        extra["authentication.kubernetes.io/pod-name"] = [pod_name]
    if pod_uid is not None:
        extra["authentication.kubernetes.io/pod-uid"] = [pod_uid]
    status: dict[str, Any] = {"authenticated": authenticated}
    if authenticated:
        status["audiences"] = [AUDIENCE] if audiences is None else audiences
        status["user"] = {"username": username, "uid": "sa-uid", "extra": extra}
    else:
        status["error"] = "token audiences are invalid for the target audiences"
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}
