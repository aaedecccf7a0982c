"""How the kube-proxy stand-in picks a backend: Ready pods only, a Service's selector, named ports."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.service_proxy import is_ready, selects, target_port

Obj = dict[str, Any]


def pod(*, ready: bool = True, ip: str = "127.1.0.5", deleting: bool = False) -> Obj:
    metadata: Obj = {"name": "p", "labels": {"app": "web", "tier": "front"}}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {
            "containers": [{"name": "main", "ports": [{"name": "http", "containerPort": 8080}]}]
        },
        "status": {
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (pod(), True),
        (pod(ready=False), False),
        (pod(ip=""), False),
        (pod(deleting=True), False),
    ],
    ids=["ready", "not-ready", "no-ip", "terminating"],
)
def test_only_ready_pods_with_an_address_take_connections(candidate: Obj, expected: bool) -> None:
    assert is_ready(candidate) is expected


def test_selector_needs_every_label_and_an_empty_one_selects_nothing() -> None:
    assert selects({"app": "web"}, pod())
    assert not selects({"app": "web", "tier": "back"}, pod())
    assert not selects({}, pod())


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ({"port": 80, "targetPort": 9090}, 9090),
        ({"port": 80, "targetPort": "http"}, 8080),
        ({"port": 80, "targetPort": "grpc"}, None),
        ({"port": 80}, 80),
    ],
    ids=["number", "named", "unknown-name", "defaults-to-port"],
)
def test_target_port_resolves_numbers_and_container_port_names(
    port: Obj, expected: int | None
) -> None:
    assert target_port(port, pod()) == expected
