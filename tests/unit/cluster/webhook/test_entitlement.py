"""A container is either wrapped and priced, or gets nothing of Bitfusion: every container kind ×
every way to reach the client or the token × wrapped or not, at validation on the final pod, and the
mutating webhook no longer takes a hand-written slice annotation for its own work."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bf_jupyter.cluster.webhook import injection
from bf_jupyter.cluster.webhook.config import WebhookConfig
from bf_jupyter.cluster.webhook.mutate import mutate_pod
from bf_jupyter.cluster.webhook.validate import validate_pod
from bf_jupyter.contract import slice_annotation_key

from .conftest import MemoryFacts, Pod

Builder = Callable[..., Any]
BIN = "/opt/bitfusion/bin/bitfusion"
WRAPPED_50 = [BIN, "run", "-n", "1", "-p", "0.5", "--", "python", "train.py"]

KINDS = ("containers", "initContainers", "ephemeralContainers")
# how a container reaches the client or the token: extra pod volumes, its mounts, its env
REACH: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]] = {
    "nothing": ([], [], {}),
    "client volume": ([], [{"name": injection.CLIENT_VOLUME, "mountPath": "/opt/bitfusion"}], {}),
    "token volume": ([], [{"name": injection.TOKEN_VOLUME, "mountPath": "/etc/bitfusion"}], {}),
    "token Secret volume": (
        [],
        [{"name": injection.TOKEN_SECRET_VOLUME, "mountPath": "/s"}],
        {},
    ),
    "Secret under another name": (
        [{"name": "creds", "secret": {"secretName": "bitfusion-secret"}}],
        [{"name": "creds", "mountPath": "/creds"}],
        {},
    ),
    "projected Secret": (
        [{"name": "p", "projected": {"sources": [{"secret": {"name": "bitfusion-secret"}}]}}],
        [{"name": "p", "mountPath": "/p"}],
        {},
    ),
    "envFrom Secret": ([], [], {"envFrom": [{"secretRef": {"name": "bitfusion-secret"}}]}),
    "env key of the Secret": (
        [],
        [],
        {
            "env": [
                {
                    "name": "T",
                    "valueFrom": {
                        "secretKeyRef": {"name": "bitfusion-secret", "key": "client.yaml"}
                    },
                }
            ]
        },
    ),
}
# what the attacking container is: wrapped for its own priced slice, or not
SHAPES = ("wrapped and priced", "priced, not wrapped", "wrapped, not priced", "plain")


def attacker(
    kind: str, shape: str, reach: str, name: str = "side", path: str = "/x"
) -> tuple[dict[str, Any], dict[str, str], list[Any]]:
    """The added container, the annotations it needs, the pod volumes it needs."""
    volumes, mounts, env = REACH[reach]
    mounts = [{**m, "mountPath": path} for m in mounts]
    container: dict[str, Any] = {"name": name, "image": "x", "command": ["python", "x.py"]}
    notes: dict[str, str] = {}
    if kind == "containers" and shape != "plain":
        if shape.startswith("wrapped"):
            container["command"] = WRAPPED_50
        if shape != "wrapped, not priced":
            notes[slice_annotation_key(name)] = "1x50%"
            container["resources"] = {
                "limits": {"bitfusion.io/gpu": "50"},
                "requests": {"bitfusion.io/gpu": "50"},
            }
    if mounts:
        container["volumeMounts"] = copy.deepcopy(mounts)
    container.update(copy.deepcopy(env))
    return container, notes, copy.deepcopy(volumes)


def allowed_by_the_rule(kind: str, shape: str, reach: str) -> bool:
    if kind == "containers" and shape == "priced, not wrapped":
        return False  # units and a slice annotation that the webhook did not write
    if reach == "nothing":
        return True
    return (
        kind == "containers"
        and shape == "wrapped and priced"
        and reach
        in (
            "client volume",
            "token volume",
        )
    )


@pytest.mark.parametrize("reach", sorted(REACH))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_shape_and_reach_is_judged_by_the_rule(
    kind: str, shape: str, reach: str
) -> None:
    judge(kind, shape, reach, "side", "/x")


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    kind=st.sampled_from(KINDS),
    shape=st.sampled_from(SHAPES),
    reach=st.sampled_from(sorted(REACH)),
    name=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True).filter(lambda n: n != "main"),
    path=st.sampled_from(["/x", "/opt/bitfusion", "/etc/bitfusion", "/root/.bitfusion", "/tmp/t"]),
)
def test_only_wrapped_priced_containers_reach_the_client_and_never_the_secret(
    kind: str, shape: str, reach: str, name: str, path: str
) -> None:
    judge(kind, shape, reach, name, path)


def judge(kind: str, shape: str, reach: str, name: str, path: str) -> None:
    # given a pod the webhook injected, plus one more container of some kind, shape and reach
    config = WebhookConfig(per_gpu_memory_bytes=16 << 30, max_gpus_per_server=4)
    main = {
        "name": "main",
        "image": "tf",
        "command": ["python", "train.py"],
        "resources": {"limits": {"bitfusion.io/gpu-amount": "1", "bitfusion.io/gpu-percent": "50"}},
    }
    pod: Pod = {
        "metadata": {"name": "p", "namespace": "team-a",
                     "annotations": {"auto-management/bitfusion": "all"}},
        "spec": {"containers": [main]},
    }  # fmt: skip
    pod = jsonpatch.apply_patch(pod, list(mutate_pod(pod, config).patch))
    container, notes, volumes = attacker(kind, shape, reach, name, path)
    pod["metadata"]["annotations"].update(notes)
    pod["spec"].setdefault("volumes", []).extend(volumes)
    pod["spec"].setdefault(kind, []).append(container)
    # when the final pod is validated
    result = validate_pod(pod, "team-a", config, MemoryFacts())
    # then it is allowed exactly when the rule allows it, and a refusal names the container
    assert result.allowed is allowed_by_the_rule(kind, shape, reach), result.problems
    if not result.allowed:
        assert f" {name} " in result.message()


def test_the_webhooks_own_init_container_and_wrapped_containers_pass(
    make_pod: Builder, gpu_container: Builder, mutated: Builder, config: WebhookConfig
) -> None:
    pod = mutated(make_pod(gpu_container("a"), gpu_container("b", percent="25")))
    assert validate_pod(pod, "team-a", config, MemoryFacts()).allowed


def test_an_init_container_that_imitates_the_webhooks_is_refused(
    make_pod: Builder, gpu_container: Builder, mutated: Builder, config: WebhookConfig
) -> None:
    pod = mutated(make_pod(gpu_container()))
    (init,) = pod["spec"]["initContainers"]
    init["command"] = ["/bin/sh", "-c", "cat /bf-jupyter/token-secret/client.yaml"]
    verdict = validate_pod(pod, "team-a", config, MemoryFacts())
    assert not verdict.allowed
    assert f"init container {injection.INIT_CONTAINER} mounts volume" in verdict.message()


@pytest.mark.parametrize("management", ["all", "injection"])
def test_a_hand_written_slice_on_an_unwrapped_container_is_refused_by_both_webhooks(
    management: str, make_pod: Builder, config: WebhookConfig
) -> None:
    # given a container with a forged slice annotation and forged units, not wrapped, no guard
    forged = {
        "name": "main",
        "image": "x",
        "command": ["python", "x.py"],
        "resources": {"limits": {"bitfusion.io/gpu": "10"}},
    }
    pod = make_pod(
        forged,
        annotations={slice_annotation_key("main"): "1x10%", "auto-management/status": "injected"},
        management=management,
    )
    # then mutation does not take it for its own earlier work, and validation refuses it
    mutation = mutate_pod(pod, config)
    assert not mutation.allowed
    assert "written only by the webhook" in mutation.message()
    validation = validate_pod(pod, "team-a", config, MemoryFacts())
    assert not validation.allowed
    assert "written only by the webhook" in validation.message()


def test_a_forged_slice_identical_to_the_webhooks_work_is_priced_as_such(
    make_pod: Builder, config: WebhookConfig
) -> None:
    # a pod whose every part equals what the webhook writes costs what the webhook would charge
    wrapped = {
        "name": "main",
        "image": "x",
        "command": WRAPPED_50,
        "resources": {"limits": {"bitfusion.io/gpu": "50"}},
    }
    pod = make_pod(wrapped, annotations={slice_annotation_key("main"): "1x50%"})
    mutation = mutate_pod(pod, config)
    assert mutation.allowed


def test_units_without_a_management_annotation_are_refused(
    make_pod: Builder, config: WebhookConfig
) -> None:
    wrapped = {"name": "main", "image": "x", "command": WRAPPED_50,
               "resources": {"limits": {"bitfusion.io/gpu": "50"}}}  # fmt: skip
    pod = make_pod(wrapped, annotations={slice_annotation_key("main"): "1x50%"}, management=None)
    verdict = validate_pod(pod, "team-a", config, MemoryFacts())
    assert not verdict.allowed
    assert "the pod does not ask for Bitfusion" in verdict.message()


def test_injection_mode_sets_the_guard_and_validation_requires_it(
    make_pod: Builder, gpu_container: Builder, mutated: Builder, config: WebhookConfig
) -> None:
    pod = mutated(make_pod(gpu_container(), management="injection"))
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env[injection.GUARD_ENV] == "1x50%"
    assert validate_pod(pod, "team-a", config, MemoryFacts()).allowed
    # a guard raised by hand is no longer the webhook's work
    for item in pod["spec"]["containers"][0]["env"]:
        if item["name"] == injection.GUARD_ENV:
            item["value"] = "4x100%"
    verdict = validate_pod(pod, "team-a", config, MemoryFacts())
    assert not verdict.allowed
    assert "does not run under the slice guard for 1x50%" in verdict.message()
