"""``kubectl debug`` adds an ephemeral container to a running pod through ``pods/ephemeralcontainers``
(an UPDATE whose object is the whole Pod): over real HTTPS, /validate refuses debug containers that
mount the client, the token or the token Secret, or read the Secret through their environment, and
lets every other debug container through."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import pytest

from bf_jupyter.cluster.webhook import injection

from .conftest import RunningWebhook, admission_review, gpu, pod_with


def running_pod(webhook: RunningWebhook) -> dict[str, Any]:
    """A pod as the mutating webhook left it at creation."""
    pod = pod_with(gpu(), **{"auto-management/bitfusion": "all"})
    status, reply = webhook.client.review("/mutate", admission_review(pod))
    assert status == 200 and reply["response"]["allowed"]
    patch = json.loads(base64.b64decode(reply["response"]["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(pod, patch)
    return result


def debug_review(pod: dict[str, Any], debug: dict[str, Any], uid: str) -> bytes:
    """The review kube-apiserver sends for `kubectl debug`: old pod, new pod with the container."""
    new = copy.deepcopy(pod)
    new["spec"].setdefault("ephemeralContainers", []).append(
        {"name": "debugger", "image": "busybox", "stdin": True, "tty": True, **debug}
    )
    return admission_review(
        new,
        uid=uid,
        operation="UPDATE",
        subResource="ephemeralcontainers",
        oldObject=pod,
        resource={"group": "", "version": "v1", "resource": "pods"},
    )


REFUSED = {
    "client": {"volumeMounts": [{"name": injection.CLIENT_VOLUME, "mountPath": "/c"}]},
    "token": {"volumeMounts": [{"name": injection.TOKEN_VOLUME, "mountPath": "/t"}]},
    "token Secret": {"volumeMounts": [{"name": injection.TOKEN_SECRET_VOLUME, "mountPath": "/s"}]},
    "envFrom": {"envFrom": [{"secretRef": {"name": "bitfusion-secret"}}]},
    "secretKeyRef": {
        "env": [
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "bitfusion-secret", "key": "k"}}}
        ]
    },
}


@pytest.mark.parametrize("debug", REFUSED.values(), ids=REFUSED.keys())
def test_a_debug_container_that_reaches_the_client_or_token_is_refused(
    webhook: RunningWebhook, debug: dict[str, Any]
) -> None:
    body = debug_review(running_pod(webhook), debug, uid="debug-1")
    status, reply = webhook.client.review("/validate", body)
    assert status == 200
    response = reply["response"]
    assert response["uid"] == "debug-1" and response["allowed"] is False
    assert response["status"]["message"].startswith("ephemeral container debugger ")


def test_a_plain_debug_container_is_allowed_and_nothing_is_mutated(
    webhook: RunningWebhook,
) -> None:
    body = debug_review(running_pod(webhook), {"command": ["sh"]}, uid="debug-2")
    status, reply = webhook.client.review("/validate", body)
    assert status == 200 and reply["response"]["allowed"] is True
    status, reply = webhook.client.review("/mutate", body)
    assert status == 200 and reply["response"] == {"uid": "debug-2", "allowed": True}


def test_a_debug_review_of_garbage_is_a_clear_bad_request(webhook: RunningWebhook) -> None:
    body = admission_review(
        {"spec": {"ephemeralContainers": "x"}},
        operation="UPDATE",
        subResource="ephemeralcontainers",
    )
    status, reply = webhook.client.review("/validate", body)
    assert status == 200 and reply["response"]["status"]["code"] == 400
    assert "spec.ephemeralContainers" in reply["response"]["status"]["message"]
