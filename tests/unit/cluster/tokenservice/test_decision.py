"""Who gets the Bitfusion token: the rules over the bearer header, the TokenReview and the pod."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.cluster.tokenservice.decision import (
    Caller,
    Refusal,
    bearer_token,
    caller_from_review,
    check_pod,
)
from bf_jupyter.cluster.webhook import injection
from tests.unit.cluster.tokenservice.conftest import AUDIENCE, gpu_container, review

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.config import WebhookConfig

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
CALLER = Caller("team-a", "default", "train", "uid-1")
Pod = dict[str, Any]


# ----- the bearer header -------------------------------------------------------------------------


def test_a_bearer_token_is_taken_from_the_header() -> None:
    assert bearer_token(f"Bearer {TOKEN}", AUDIENCE) == TOKEN
    assert bearer_token(f"bearer  {TOKEN} ", AUDIENCE) == TOKEN


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", "Bearer not-a-jwt", "Bearer a.b", "Bearer a.b.c d",
     "Bearer " + "a" * 9000 + ".b.c", "Bearer a.b.c\x00"],
    ids=["absent", "empty", "no-token", "blank", "basic", "opaque", "two-parts", "space", "huge", "nul"],
)  # fmt: skip
def test_anything_but_a_bearer_service_account_token_is_401_without_echo(
    header: str | None,
) -> None:
    with pytest.raises(Refusal) as refused:
        bearer_token(header, AUDIENCE)
    assert refused.value.status == 401
    assert AUDIENCE in refused.value.reason and "\n" not in refused.value.reason
    if header and len(header) > 8:
        assert header.split(" ", 1)[-1].strip() not in refused.value.reason


# ----- the TokenReview ---------------------------------------------------------------------------


def test_a_pod_bound_token_for_the_audience_names_its_pod() -> None:
    assert caller_from_review(review(), AUDIENCE) == CALLER


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (review(authenticated=False), "not valid for audience"),
        (review(audiences=["https://kubernetes.default.svc"]), "not for audience"),
        (review(audiences=[]), "not for audience"),
        ({"status": {}}, "not valid"),
        ({}, "not valid"),
        (review(username="alice"), "not a service account"),
        (review(username="system:serviceaccount:team-a"), "bound to no pod"),
        (review(pod_name=None), "bound to no pod"),
        (review(pod_uid=None), "bound to no pod"),
    ],
    ids=["unauthenticated", "wrong-audience", "no-audience", "no-verdict", "no-status", "a-user",
         "no-account-name", "no-pod-name", "no-pod-uid"],
)  # fmt: skip
def test_a_token_the_review_does_not_bind_to_a_pod_for_the_audience_is_401(
    answer: dict[str, Any], words: str
) -> None:
    with pytest.raises(Refusal) as refused:
        caller_from_review(answer, AUDIENCE)
    assert refused.value.status == 401 and words in refused.value.reason


def test_extra_values_must_be_exactly_one_name() -> None:
    answer = review()
    answer["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"] = ["a", "b"]
    with pytest.raises(Refusal):
        caller_from_review(answer, AUDIENCE)


# ----- the pod -----------------------------------------------------------------------------------


def test_the_pod_the_webhook_admitted_gets_the_token(
    admitted: Callable[..., Pod], config: WebhookConfig
) -> None:
    check_pod(admitted(), CALLER, config)  # no refusal


def test_an_injection_mode_pod_under_the_guard_gets_the_token(
    admitted: Callable[..., Pod], config: WebhookConfig
) -> None:
    check_pod(admitted(management="injection"), CALLER, config)


def _refusal(pod: Pod | None, config: WebhookConfig, caller: Caller = CALLER) -> Refusal:
    with pytest.raises(Refusal) as refused:
        check_pod(pod, caller, config)
    assert refused.value.status == 403 and "\n" not in refused.value.reason
    return refused.value


def test_a_pod_that_is_gone_is_refused(config: WebhookConfig) -> None:
    assert "does not exist" in _refusal(None, config).reason


def test_a_pod_with_another_uid_is_refused(
    admitted: Callable[..., Pod], config: WebhookConfig
) -> None:
    assert "earlier pod" in _refusal(admitted(uid="uid-2"), config).reason


def test_a_pod_in_another_namespace_or_service_account_is_refused(
    admitted: Callable[..., Pod], config: WebhookConfig
) -> None:
    assert (
        "another namespace"
        in _refusal(admitted(), config, Caller("team-b", "default", "train", "uid-1")).reason
    )
    assert (
        "service account"
        in _refusal(admitted(), config, Caller("team-a", "builder", "train", "uid-1")).reason
    )


@pytest.mark.parametrize("ending", ["deleting", "Succeeded", "Failed"])
def test_an_ending_pod_is_refused(
    admitted: Callable[..., Pod], config: WebhookConfig, ending: str
) -> None:
    pod = admitted()
    if ending == "deleting":
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    else:
        pod["status"]["phase"] = ending
    assert "ending" in _refusal(pod, config).reason


def test_a_pod_the_webhook_did_not_mark_is_refused(
    admitted: Callable[..., Pod], config: WebhookConfig
) -> None:
    pod = admitted()
    del pod["metadata"]["annotations"]["auto-management/status"]
    assert "auto-management/status" in _refusal(pod, config).reason


def test_a_pod_that_never_asked_for_bitfusion_is_refused(config: WebhookConfig) -> None:
    pod = {
        "metadata": {"name": "train", "namespace": "team-a", "uid": "uid-1"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    assert "auto-management/status" in _refusal(pod, config).reason


def test_a_marked_pod_without_any_priced_container_is_refused(config: WebhookConfig) -> None:
    pod = {
        "metadata": {
            "name": "train", "namespace": "team-a", "uid": "uid-1",
            "annotations": {"auto-management/bitfusion": "all", "auto-management/status": "injected"},
        },
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }  # fmt: skip
    assert "bitfusion run" in _refusal(pod, config).reason


@pytest.mark.parametrize(
    "forgery",
    ["unwrapped command", "units below the price", "second container mounts the token",
     "own init container mounts the service-account token", "fetch container altered",
     "extra container reads the token volume by name"],
)  # fmt: skip
def test_a_forged_or_widened_pod_is_refused(
    admitted: Callable[..., Pod], config: WebhookConfig, forgery: str
) -> None:
    pod = copy.deepcopy(admitted())
    containers = pod["spec"]["containers"]
    init = pod["spec"]["initContainers"]
    token_mount = {"name": injection.TOKEN_VOLUME, "mountPath": "/steal"}
    account_mount = {"name": injection.SERVICE_ACCOUNT_TOKEN_VOLUME, "mountPath": "/sa"}
    if forgery == "unwrapped command":
        containers[0]["command"] = ["python", "train.py"]
    elif forgery == "units below the price":
        containers[0]["resources"]["limits"]["bitfusion.io/gpu"] = "1"
        containers[0]["resources"].setdefault("requests", {})["bitfusion.io/gpu"] = "1"
    elif forgery == "second container mounts the token":
        containers.append({"name": "side", "image": "busybox", "volumeMounts": [token_mount]})
    elif forgery == "own init container mounts the service-account token":
        init.append({"name": "grab", "image": "busybox", "volumeMounts": [account_mount]})
    elif forgery == "fetch container altered":
        fetch = next(c for c in init if c["name"] == injection.TOKEN_FETCH_CONTAINER)
        fetch["command"] = ["sh", "-c", "cat /bf-jupyter/service-account/token"]
    else:
        containers.append({"name": "side", "image": "busybox", "volumeMounts": [account_mount]})
    assert "not entitled" in _refusal(pod, config).reason


def test_a_malformed_pod_is_refused_not_crashed(
    admitted: Callable[..., Pod], config: WebhookConfig
) -> None:
    pod = admitted()
    pod["spec"]["volumes"] = "everything"
    assert "malformed" in _refusal(pod, config).reason


def test_the_second_container_of_a_refused_pod_is_counted(
    admitted: Callable[..., Pod], config: WebhookConfig
) -> None:
    pod = admitted(gpu_container("a"), gpu_container("b"))
    for container in pod["spec"]["containers"]:
        container["command"] = ["python", "train.py"]
    # the first problem, and how many more (each container's, and the mounts they may not have)
    assert re.search(r"container a .*\(and \d+ more\)$", _refusal(pod, config).reason)
