"""The webhook's own containers are recognised after the API server's defaulting, and only after
defaulting: every field that decides what runs or what it reaches is still compared. (The real
apiserver's defaulting is exercised in tests/integration/webhook/test_defaulted_pods.py.)"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.cluster.webhook import injection
from bf_jupyter.cluster.webhook.defaulting import SERVICE_ACCOUNT_MOUNT_PATH, same_container
from bf_jupyter.cluster.webhook.podspec import PodShapeError, quota_units_of
from bf_jupyter.cluster.webhook.validate import validate_pod

from .conftest import MemoryFacts

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.config import WebhookConfig

Container = dict[str, Any]
SA_MOUNT = {"name": "kube-api-access-x1", "mountPath": SERVICE_ACCOUNT_MOUNT_PATH, "readOnly": True}


def apiserver_defaults(container: Container) -> Container:
    """What kube-apiserver and its ServiceAccount plugin do to a container."""
    result = copy.deepcopy(container)
    result.setdefault("imagePullPolicy", "IfNotPresent")
    result["terminationMessagePath"] = "/dev/termination-log"
    result["terminationMessagePolicy"] = "File"
    result["resources"] = {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "1Gi"},
    }
    result["volumeMounts"] = [{"readOnly": False, **m} for m in result.get("volumeMounts", [])] + [
        SA_MOUNT
    ]
    return result


@pytest.fixture
def client_init(config: WebhookConfig) -> Container:
    return injection.init_container(config.client_for({}), config)


def test_a_defaulted_webhook_container_is_the_same(client_init: Container) -> None:
    assert same_container(apiserver_defaults(client_init), client_init)


TAMPERING: dict[str, Callable[[Container], None]] = {
    "command": lambda c: c["command"].__setitem__(2, "cat /bf-jupyter/token-secret/*"),
    "args": lambda c: c.__setitem__("args", ["x"]),
    "image": lambda c: c.__setitem__("image", "evil:1"),
    "extra mount": lambda c: c["volumeMounts"].append({"name": "tools", "mountPath": "/bin"}),
    "mount moved": lambda c: c["volumeMounts"][0].__setitem__("mountPath", "/usr/bin"),
    "mount subPath": lambda c: c["volumeMounts"][0].__setitem__("subPath", "x"),
    "mount made writable elsewhere": lambda c: c["volumeMounts"][2].__setitem__("readOnly", False),
    "env": lambda c: c.__setitem__("env", [{"name": "LD_PRELOAD", "value": "/x.so"}]),
    "envFrom": lambda c: c.__setitem__("envFrom", [{"configMapRef": {"name": "x"}}]),
    "workingDir": lambda c: c.__setitem__("workingDir", "/tmp"),
    "sidecar probe": lambda c: c.update(
        restartPolicy="Always", startupProbe={"exec": {"command": ["sh", "-c", "cat /s/*"]}}
    ),
    "privileged": lambda c: c["securityContext"].__setitem__("privileged", True),
    "SA path with another subPath": lambda c: c["volumeMounts"].append(
        {**SA_MOUNT, "name": "tools", "subPath": "x"}
    ),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_a_tampered_webhook_container_is_not_the_same_before_or_after_defaulting(
    client_init: Container, tampering: str
) -> None:
    tampered = copy.deepcopy(client_init)
    TAMPERING[tampering](tampered)
    assert not same_container(tampered, client_init)
    assert not same_container(apiserver_defaults(tampered), client_init)


@pytest.mark.parametrize("text", ["1k", "1000", "1e3", "1000000m", 1000])
def test_units_are_read_as_quantities(text: object) -> None:
    container = {"resources": {"limits": {"bitfusion.io/gpu": text}}}
    assert quota_units_of(container) == 1000


@pytest.mark.parametrize("text", ["500m", "1.5", "-1", "1Ki1", "x", True, 1.0, "1e40"])
def test_units_that_are_not_whole_are_refused(text: object) -> None:
    with pytest.raises(PodShapeError, match="whole number of units"):
        quota_units_of({"resources": {"limits": {"bitfusion.io/gpu": text}}})


def test_validation_admits_the_webhooks_pod_with_defaulted_init_containers(
    make_pod: Callable[..., Any],
    gpu_container: Callable[..., Container],
    mutated: Callable[..., Any],
    config: WebhookConfig,
) -> None:
    pod = mutated(make_pod(gpu_container(), management="injection"))
    pod["spec"]["initContainers"] = [apiserver_defaults(c) for c in pod["spec"]["initContainers"]]
    verdict = validate_pod(pod, "team-a", config, MemoryFacts())
    assert verdict.allowed, verdict.problems
