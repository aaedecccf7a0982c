"""The validating rule admits the pods the mutating webhook makes once the real kube-apiserver has
defaulted them, and still refuses tampered variants after the same defaulting.

Between the two webhooks the API server fills in fields (pull and termination-message policies,
requests from limits, quantities rewritten: ``0.05`` → ``50m``, ``0.25Gi`` → ``256Mi``, ``1000`` →
``1k``; volume ``defaultMode``, the projected token's ``expirationSeconds``) and the ServiceAccount
plugin mounts the API token into every container. ``kubectl create --dry-run=server`` on the test
control plane (no webhook installed there) returns exactly that defaulted pod.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import jsonpatch
import pytest

from bf_jupyter.cluster.webhook import injection
from bf_jupyter.cluster.webhook.config import TokenSource, WebhookConfig
from bf_jupyter.cluster.webhook.entitlement import pod_token_problems
from bf_jupyter.cluster.webhook.mutate import mutate_pod
from bf_jupyter.cluster.webhook.validate import QuotaLeft, validate_pod
from tests.support.control_plane_fixtures import fresh_namespace

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane

GIB = 1 << 30
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
Pod = dict[str, Any]
# Quantities the API server rewrites, so the init containers are not returned as written.
UNCANONICAL = {"requests": {"cpu": "0.05", "memory": "0.0625Gi"}, "limits": {"memory": "0.25Gi"}}


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """One namespace for the module: a dry run stores nothing, so the tests cannot meet."""
    with fresh_namespace(control_plane) as name:
        yield name


class AmpleFacts:
    """A cluster with room for any slice and the token Secret in place."""

    blocking = False

    def quotas(self, namespace: str) -> tuple[QuotaLeft, ...]:
        return ()

    def largest_node_units(self) -> int:
        return 100_000

    def token_secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        return frozenset(injection.TOKEN_FILES)


def site(source: TokenSource) -> WebhookConfig:
    return WebhookConfig(
        per_gpu_memory_bytes=16 * GIB,
        token_source=source,
        token_service_ca=CA,
        image_pull_policy="Always",
        init_resources=UNCANONICAL,
    )


def gpu(name: str, limits: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "tensorflow/tensorflow:2.16.1-gpu",
        "command": ["python"],
        "args": ["train.py"],
        "resources": {"limits": {"cpu": "0.5", **limits}},
        **extra,
    }


PERCENT = {"bitfusion.io/gpu-amount": "1", "bitfusion.io/gpu-percent": "50"}
MEMORY = {"bitfusion.io/gpu-amount": "2", "bitfusion.io/gpu-memory": "4Gi"}
TEN_WHOLE = {"bitfusion.io/gpu-amount": "10", "bitfusion.io/gpu-percent": "100"}  # 1000 → "1k"

SHAPES: dict[str, Callable[[], dict[str, Any]]] = {
    "one percent slice": lambda: {"containers": [gpu("main", PERCENT)]},
    "memory slices and a plain sidecar": lambda: {
        "containers": [
            gpu("a", MEMORY, env=[{"name": "LD_LIBRARY_PATH", "value": "/opt/lib"}]),
            gpu("b", PERCENT, volumeMounts=[{"name": "data", "mountPath": "/data"}]),
            {"name": "side", "image": "busybox:1.36", "command": ["sleep", "inf"]},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    },
    "the user's init container": lambda: {
        "initContainers": [
            {
                "name": "fetch-data",
                "image": "busybox:1.36",
                "command": ["sh", "-c", "true"],
                "resources": {"limits": {"cpu": "0.1"}},
            }
        ],
        "containers": [gpu("main", PERCENT)],
    },
    "a slice of a thousand units": lambda: {"containers": [gpu("main", TEN_WHOLE)]},
}


def user_pod(namespace: str, management: str, spec: dict[str, Any]) -> Pod:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "train",
            "namespace": namespace,
            "annotations": {"auto-management/bitfusion": management},
        },
        "spec": spec,
    }


def mutated(pod: Pod, config: WebhookConfig) -> Pod:
    verdict = mutate_pod(pod, config)
    assert verdict.allowed, verdict.problems
    result: Pod = jsonpatch.apply_patch(pod, list(verdict.patch))
    return result


def defaulted(plane: ControlPlane, pod: Pod) -> Pod:
    """The pod as the API server stores it (defaulted, admitted by the in-tree plugins)."""
    done = plane.kubectl(
        "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod)
    )
    assert done.returncode == 0, done.stderr
    result: Pod = json.loads(done.stdout)
    return result


def init(pod: Pod, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in pod["spec"]["initContainers"] if c["name"] == name]
    (container,) = found
    return container


def client_init(pod: Pod) -> dict[str, Any]:
    return init(pod, injection.INIT_CONTAINER)


def _command(pod: Pod) -> None:
    client_init(pod)["command"][2] = "cat /bf-jupyter/token-secret/client.yaml; " + "true"


def _image(pod: Pod) -> None:
    client_init(pod)["image"] = "attacker/bitfusion-client:4.5.0-ubuntu20"


def _shadowing_mount(pod: Pod) -> None:
    pod["spec"]["volumes"].append({"name": "tools", "emptyDir": {}})
    client_init(pod)["volumeMounts"].append({"name": "tools", "mountPath": "/bin"})


def _moved_mount(pod: Pod) -> None:
    for mount in client_init(pod)["volumeMounts"]:
        if mount["name"] == injection.CLIENT_VOLUME:
            mount["mountPath"] = "/usr/bin"


def _preload(pod: Pod) -> None:
    client_init(pod).setdefault("env", []).append({"name": "LD_PRELOAD", "value": "/x/evil.so"})


def _sidecar_probe(pod: Pod) -> None:
    container = client_init(pod)
    container["restartPolicy"] = "Always"
    container["startupProbe"] = {"exec": {"command": ["sh", "-c", "cat /bf-jupyter/*/*"]}}


def _working_dir(pod: Pod) -> None:
    client_init(pod)["workingDir"] = "/tmp"


def _forged_units(pod: Pod) -> None:
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    limits["bitfusion.io/gpu"] = "1"
    pod["spec"]["containers"][0]["resources"]["requests"]["bitfusion.io/gpu"] = "1"


TAMPERING: dict[str, Callable[[Pod], None]] = {
    "another command": _command,
    "another image": _image,
    "a user volume over /bin": _shadowing_mount,
    "the client volume moved": _moved_mount,
    "LD_PRELOAD": _preload,
    "a sidecar probe": _sidecar_probe,
    "a working directory": _working_dir,
    "units below the slice's price": _forged_units,
}


@pytest.mark.slow
@pytest.mark.parametrize("source", list(TokenSource), ids=lambda s: s.value)
@pytest.mark.parametrize("management", ["all", "injection"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_webhooks_own_pod_passes_validation_after_defaulting(
    control_plane: ControlPlane, namespace: str, source: TokenSource, management: str, shape: str
) -> None:
    # given a pod the mutating webhook made, as the API server defaults it
    config = site(source)
    made = mutated(user_pod(namespace, management, SHAPES[shape]()), config)
    stored = defaulted(control_plane, made)
    # (the defaulting did change the webhook's init containers, else this proves nothing)
    assert client_init(stored) != client_init(made)
    # then validation admits it, and the token service would hand it the token
    verdict = validate_pod(stored, namespace, config, AmpleFacts())
    assert verdict.allowed, verdict.problems
    assert pod_token_problems(stored, config) == []


@pytest.mark.slow
@pytest.mark.parametrize("source", list(TokenSource), ids=lambda s: s.value)
@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_a_tampered_pod_is_refused_after_defaulting(
    control_plane: ControlPlane, namespace: str, source: TokenSource, tampering: str
) -> None:
    # given the webhook's pod tampered with, then defaulted by the API server
    config = site(source)
    made = mutated(user_pod(namespace, "injection", SHAPES["one percent slice"]()), config)
    tampered = copy.deepcopy(made)
    TAMPERING[tampering](tampered)
    stored = defaulted(control_plane, tampered)
    # then validation refuses it, and the token service would not hand out the token
    verdict = validate_pod(stored, namespace, config, AmpleFacts())
    assert not verdict.allowed
    assert pod_token_problems(stored, config)
