"""Client injection by the mutating rule: the init container, volumes, mounts and library path a
pod gets, and which client build it gets. Every patch is applied with jsonpatch."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.cluster.webhook import injection
from bf_jupyter.cluster.webhook.mutate import mutate_pod

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.config import WebhookConfig

    from .conftest import Pod

Builder = Callable[..., Any]


def containers(pod: Pod) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"]["containers"]}


# ----- client injection ------------------------------------------------------------------------


def test_webhook_appends_after_existing_init_containers_upstream_defect_3(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    own = [{"name": "fetch-data", "image": "busybox", "command": ["true"]}]
    result = mutated(make_pod(gpu_container(), initContainers=copy.deepcopy(own)))
    names = [c["name"] for c in result["spec"]["initContainers"]]
    assert names == ["fetch-data", injection.INIT_CONTAINER]
    assert result["spec"]["initContainers"][0] == own[0]
    assert result["spec"]["initContainers"][1]["image"]  # a whole container, not an empty add


def test_webhook_injects_one_init_container_that_copies_client_and_token(
    make_pod: Builder, gpu_container: Builder, mutated: Builder, config: WebhookConfig
) -> None:
    result = mutated(make_pod(gpu_container()))
    (init,) = result["spec"]["initContainers"]
    build = config.client_for({})
    assert init["image"] == build.image
    assert init["command"][:2] == ["/bin/sh", "-c"]
    assert init["command"][3:] == [
        injection.INIT_CONTAINER, build.client_dir, "/bf-jupyter/client",
        "/bf-jupyter/token-secret", "/bf-jupyter/token",
    ]  # fmt: skip
    script = init["command"][2]
    assert "$1" in script and build.client_dir not in script  # paths are arguments, not text
    assert 'chmod 0666 "$4"/servers.conf' in script  # the client rewrites servers.conf
    volumes = {v["name"]: v for v in result["spec"]["volumes"]}
    assert volumes[injection.TOKEN_SECRET_VOLUME]["secret"]["secretName"] == config.token_secret
    assert (
        "emptyDir" in volumes[injection.TOKEN_VOLUME]
        and "emptyDir" in volumes[injection.CLIENT_VOLUME]
    )
    mounts = {m["mountPath"]: m for m in containers(result)["main"]["volumeMounts"]}
    assert (
        mounts["/etc/bitfusion"]["name"] == injection.TOKEN_VOLUME
    )  # writable copy, not the Secret
    assert mounts["/root/.bitfusion"]["name"] == injection.TOKEN_VOLUME
    assert mounts[build.client_dir] == {
        "name": injection.CLIENT_VOLUME, "mountPath": build.client_dir, "readOnly": True,
    }  # fmt: skip


def test_webhook_keeps_existing_volumes_mounts_and_env(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    data = {"name": "data", "persistentVolumeClaim": {"claimName": "imagenet"}}
    mount = {"name": "data", "mountPath": "/data"}
    env = [
        {"name": "EPOCHS", "value": "3"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    pod = make_pod(gpu_container(volumeMounts=[mount], env=copy.deepcopy(env)), volumes=[data])
    result = mutated(pod)
    main = containers(result)["main"]
    assert result["spec"]["volumes"][0] == data
    assert main["volumeMounts"][0] == mount
    assert main["env"][:2] == env


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            [],
            "/opt/bitfusion/lib/x86_64-linux-gnu/lib:/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
        ),
        (
            [{"name": "LD_LIBRARY_PATH", "value": "/usr/local/cuda/lib64:/opt/mine"}],
            "/opt/bitfusion/lib/x86_64-linux-gnu/lib:/usr/local/cuda/lib64:/opt/mine",
        ),
        (
            [
                {
                    "name": "LD_LIBRARY_PATH",
                    "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}},
                }
            ],
            "/opt/bitfusion/lib/x86_64-linux-gnu/lib:$(BF_JUPYTER_USER_LD_LIBRARY_PATH)",
        ),
    ],
    ids=["unset", "value", "valueFrom"],
)
def test_webhook_prefixes_ld_library_path_keeping_what_the_pod_set(
    env: list[dict[str, Any]],
    expected: str,
    make_pod: Builder,
    gpu_container: Builder,
    mutated: Builder,
) -> None:
    main = containers(mutated(make_pod(gpu_container(env=copy.deepcopy(env)))))["main"]
    values = {e["name"]: e for e in main["env"]}
    assert values["LD_LIBRARY_PATH"]["value"] == expected
    if env and "valueFrom" in env[0]:
        assert values[injection.USER_LIBRARY_ENV]["valueFrom"] == env[0]["valueFrom"]
        names = [e["name"] for e in main["env"]]
        assert names.index(injection.USER_LIBRARY_ENV) < names.index("LD_LIBRARY_PATH")


def test_webhook_denies_a_container_that_mounts_something_where_the_client_goes(
    make_pod: Builder, gpu_container: Builder, config: WebhookConfig
) -> None:
    mount = {"name": "mine", "mountPath": "/etc/bitfusion"}
    pod = make_pod(gpu_container(volumeMounts=[mount]), volumes=[{"name": "mine", "emptyDir": {}}])
    verdict = mutate_pod(pod, config)
    assert not verdict.allowed
    assert "already mounts /etc/bitfusion (volume mine)" in verdict.message()


# ----- clients -----------------------------------------------------------------------------------


def test_webhook_denies_an_unknown_client_naming_the_known_pairs(
    make_pod: Builder, gpu_container: Builder, config: WebhookConfig
) -> None:
    pod = make_pod(
        gpu_container(),
        annotations={"bitfusion-client/os": "windows", "bitfusion-client/version": "999"},
    )
    verdict = mutate_pod(pod, config)
    assert not verdict.allowed
    assert "'windows'" in verdict.message() and "ubuntu20/450" in verdict.message()


def test_webhook_uses_the_named_client_build(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    pod = make_pod(
        gpu_container(),
        annotations={"bitfusion-client/os": "centos7", "bitfusion-client/version": "401"},
    )
    assert mutated(pod)["spec"]["initContainers"][0]["image"] == "bitfusion-client:4.0.1-centos7"


def test_webhook_uses_the_default_client_when_the_pod_names_none(
    make_pod: Builder, gpu_container: Builder, mutated: Builder, config: WebhookConfig
) -> None:
    image = mutated(make_pod(gpu_container()))["spec"]["initContainers"][0]["image"]
    assert image == config.client_for({}).image == "bitfusion-client:4.5.0-ubuntu20"
