"""Token-service mode in the admission rules: the pod gets a token-fetch init container and a
projected service-account token for it alone, no token Secret, and validation no longer asks the
namespace for one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bf_jupyter.cluster.webhook import injection
from bf_jupyter.cluster.webhook.config import TokenSource, WebhookConfig
from bf_jupyter.cluster.webhook.validate import validate_pod
from tests.unit.cluster.webhook.conftest import MemoryFacts

GIB = 1 << 30
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
Pod = dict[str, Any]


@pytest.fixture
def service_config() -> WebhookConfig:
    return WebhookConfig(
        per_gpu_memory_bytes=16 * GIB, token_source=TokenSource.SERVICE, token_service_ca=CA
    )


def _mounting(pod: Pod, volume: str) -> list[str]:
    spec = pod["spec"]
    return [
        c["name"]
        for field in ("initContainers", "containers")
        for c in spec.get(field, [])
        if any(m["name"] == volume for m in c.get("volumeMounts", []))
    ]


@pytest.mark.parametrize("management", ["all", "injection"])
def test_the_token_comes_from_the_service_not_a_secret(
    make_pod: Callable[..., Pod],
    gpu_container: Callable[..., dict[str, Any]],
    mutated: Callable[..., Pod],
    service_config: WebhookConfig,
    management: str,
) -> None:
    pod = mutated(make_pod(gpu_container(), management=management), service_config)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    # no volume of the pod is the token Secret
    assert injection.TOKEN_SECRET_VOLUME not in volumes
    assert not [v for v in volumes.values() if "secret" in v]
    # the projected token is bound to the service's audience and mounted into the fetch only
    (source,) = volumes[injection.SERVICE_ACCOUNT_TOKEN_VOLUME]["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "bf-jupyter-token-service"
    assert _mounting(pod, injection.SERVICE_ACCOUNT_TOKEN_VOLUME) == [
        injection.TOKEN_FETCH_CONTAINER
    ]
    # the fetch runs first, as an argv (no shell), and writes into the token volume
    init = pod["spec"]["initContainers"]
    fetch = init[0]
    assert fetch["name"] == injection.TOKEN_FETCH_CONTAINER
    assert fetch["command"][:2] == ["bf-jupyter", "token-fetch"] and "sh" not in fetch["command"][0]
    assert fetch["env"] == [{"name": injection.TOKEN_CA_ENV, "value": CA}]
    assert _mounting(pod, injection.TOKEN_VOLUME)[0] == injection.TOKEN_FETCH_CONTAINER
    # the client init container copies only the client
    client = next(c for c in init if c["name"] == injection.INIT_CONTAINER)
    assert "token-secret" not in " ".join(m["mountPath"] for m in client["volumeMounts"])


def test_mutating_twice_changes_nothing(
    make_pod: Callable[..., Pod],
    gpu_container: Callable[..., dict[str, Any]],
    mutated: Callable[..., Pod],
    service_config: WebhookConfig,
) -> None:
    once = mutated(make_pod(gpu_container()), service_config)
    assert mutated(once, service_config) == once


def test_validation_admits_the_mutated_pod_without_asking_for_a_secret(
    make_pod: Callable[..., Pod],
    gpu_container: Callable[..., dict[str, Any]],
    mutated: Callable[..., Pod],
    service_config: WebhookConfig,
) -> None:
    facts = MemoryFacts(secret_keys=None)  # the namespace holds no token Secret
    verdict = validate_pod(
        mutated(make_pod(gpu_container()), service_config), "team-a", service_config, facts
    )
    assert verdict.allowed, verdict.problems
    assert not [asked for asked in facts.asked if asked.startswith("secret")]


def test_secret_mode_still_asks_for_the_secret(
    make_pod: Callable[..., Pod],
    gpu_container: Callable[..., dict[str, Any]],
    mutated: Callable[..., Pod],
    config: WebhookConfig,
) -> None:
    facts = MemoryFacts(secret_keys=None)
    verdict = validate_pod(mutated(make_pod(gpu_container())), "team-a", config, facts)
    assert not verdict.allowed and "has no Secret bitfusion-secret" in verdict.message()


@pytest.mark.parametrize("where", ["containers", "initContainers"])
def test_a_container_of_ours_that_mounts_the_service_account_token_is_refused(
    make_pod: Callable[..., Pod],
    gpu_container: Callable[..., dict[str, Any]],
    mutated: Callable[..., Pod],
    service_config: WebhookConfig,
    where: str,
) -> None:
    pod = mutated(make_pod(gpu_container()), service_config)
    grab = {
        "name": "grab", "image": "busybox",
        "volumeMounts": [{"name": injection.SERVICE_ACCOUNT_TOKEN_VOLUME, "mountPath": "/sa"}],
    }  # fmt: skip
    pod["spec"][where].append(grab)
    verdict = validate_pod(pod, "team-a", service_config, MemoryFacts())
    assert not verdict.allowed
    assert f"mounts volume {injection.SERVICE_ACCOUNT_TOKEN_VOLUME}" in verdict.message()


def test_a_hand_written_service_account_token_for_the_audience_is_protected(
    make_pod: Callable[..., Pod], service_config: WebhookConfig
) -> None:
    # a pod that never asked for Bitfusion but projects a token for the service's audience
    volume = {
        "name": "mine",
        "projected": {
            "sources": [{"serviceAccountToken": {"audience": "bf-jupyter-token-service"}}]
        },
    }
    pod = make_pod(
        {"name": "main", "image": "busybox", "volumeMounts": [{"name": "mine", "mountPath": "/t"}]},
        management=None,
        volumes=[volume],
    )
    verdict = validate_pod(pod, "team-a", service_config, MemoryFacts())
    assert (
        not verdict.allowed and "service-account token for the token service" in verdict.message()
    )
