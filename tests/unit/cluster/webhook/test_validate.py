"""The validating rule: what a Bitfusion pod must satisfy, every problem reported at once, and cluster
checks that degrade to warnings when the API cannot answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.cluster.webhook.config import WebhookConfig
from bf_jupyter.cluster.webhook.validate import QuotaLeft, validate_pod
from bf_jupyter.contract import slice_annotation_key

if TYPE_CHECKING:
    from .conftest import MemoryFacts, Pod

Builder = Callable[..., Any]


@pytest.fixture
def gpu_pod(make_pod: Builder, gpu_container: Builder, mutated: Builder) -> Callable[..., Pod]:
    """A pod as the mutating webhook leaves it: ``gpu_pod(amount, percent)``."""

    def build(amount: str = "1", percent: str = "50", **pod: Any) -> Pod:
        result: Pod = mutated(make_pod(gpu_container(amount=amount, percent=percent), **pod))
        return result

    return build


def test_validation_allows_pods_that_do_not_use_bitfusion(
    make_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    pod = make_pod({"name": "web", "image": "nginx"}, management=None)
    assert validate_pod(pod, "team-a", config, facts).allowed
    assert facts.asked == []  # nothing asked of the cluster for an unrelated pod


def test_validation_allows_a_mutated_pod_that_fits(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    facts.quota = (QuotaLeft("gpus", 200, 100),)
    verdict = validate_pod(gpu_pod(), "team-a", config, facts)
    assert verdict.allowed and verdict.warnings == ()
    assert facts.asked == ["nodes", "quotas team-a", "secret team-a/bitfusion-secret"]


def test_validation_refuses_keys_the_mutating_webhook_did_not_convert(
    make_pod: Builder, gpu_container: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    # given a managed pod that reached validation unmutated (mutating webhook down: failurePolicy Ignore)
    pod = make_pod(gpu_container())
    verdict = validate_pod(pod, "team-a", config, facts)
    assert not verdict.allowed
    assert "the Bitfusion webhook did not process the pod" in verdict.message()


def test_validation_refuses_slice_keys_on_an_unmanaged_pod_saying_what_to_add(
    make_pod: Builder, gpu_container: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    verdict = validate_pod(make_pod(gpu_container(), management=None), "team-a", config, facts)
    assert not verdict.allowed
    assert "lacks the annotation auto-management/bitfusion: all" in verdict.message()


def test_validation_refuses_more_gpus_than_one_server_has(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    verdict = validate_pod(gpu_pod(amount="8", percent="10"), "team-a", config, facts)
    assert not verdict.allowed
    assert "asks for 8 GPUs but a Bitfusion server has at most 4" in verdict.message()


def test_validation_refuses_more_memory_than_one_gpu_has(
    make_pod: Builder, gpu_container: Builder, mutated: Builder, facts: MemoryFacts
) -> None:
    # given a pod mutated where GPUs have 32 GiB, validated where they have 16 GiB
    pod = mutated(
        make_pod(gpu_container(percent=None, memory="24Gi")),
        WebhookConfig(per_gpu_memory_bytes=32 << 30),
    )
    verdict = validate_pod(pod, "team-a", WebhookConfig(per_gpu_memory_bytes=16 << 30), facts)
    assert not verdict.allowed
    assert "gpu-memory 24Gi exceeds the 16Gi of one GPU" in verdict.message()


def test_validation_explains_a_quota_that_is_too_small(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    facts.quota = (QuotaLeft("gpus", 200, 150),)
    verdict = validate_pod(gpu_pod(amount="3", percent="50"), "team-a", config, facts)
    assert not verdict.allowed
    assert "needs 150 units, namespace team-a has 50 of 200 left" in verdict.message()


def test_validation_refuses_a_slice_no_node_can_hold(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    facts.largest_node = 100
    verdict = validate_pod(gpu_pod(amount="2", percent="100"), "team-a", config, facts)
    assert not verdict.allowed
    assert (
        "pod needs 200 units of bitfusion.io/gpu but the largest node offers 100"
        in verdict.message()
    )


def test_validation_says_when_no_node_advertises_bitfusion(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    facts.largest_node = 0
    verdict = validate_pod(gpu_pod(), "team-a", config, facts)
    assert (
        "no node advertises bitfusion.io/gpu: is the bf-device-plugin DaemonSet"
        in verdict.message()
    )


def test_validation_says_how_to_create_a_missing_token_secret(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    facts.secret_keys = None
    verdict = validate_pod(gpu_pod(), "team-a", config, facts)
    assert not verdict.allowed
    assert "namespace team-a has no Secret bitfusion-secret" in verdict.message()
    assert "kubectl -n team-a create secret generic bitfusion-secret" in verdict.message()


def test_validation_names_token_files_missing_from_the_secret(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    facts.secret_keys = frozenset({"ca.crt"})
    verdict = validate_pod(gpu_pod(), "team-a", config, facts)
    assert "lacks client.yaml, servers.conf" in verdict.message()


def test_validation_skips_cluster_checks_with_warnings_when_the_api_is_gone(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    facts.unavailable = "Kubernetes API unreachable"
    verdict = validate_pod(gpu_pod(), "team-a", config, facts)
    assert verdict.allowed
    assert verdict.skipped == ("capacity", "quota", "token Secret")
    assert all("skipped: Kubernetes API unreachable" in w for w in verdict.warnings)


def test_validation_refuses_units_that_do_not_match_the_recorded_slice(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    pod = gpu_pod()
    for section in ("requests", "limits"):
        pod["spec"]["containers"][0]["resources"][section]["bitfusion.io/gpu"] = "5"
    verdict = validate_pod(pod, "team-a", config, facts)
    assert "requests 5 units of bitfusion.io/gpu but its slice 1x50% costs 50" in verdict.message()


def test_validation_refuses_units_written_by_hand_on_an_injected_pod(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    pod = gpu_pod()
    del pod["metadata"]["annotations"][slice_annotation_key("main")]
    verdict = validate_pod(pod, "team-a", config, facts)
    assert "sets bitfusion.io/gpu directly" in verdict.message()


def test_validation_refuses_a_slice_annotation_for_a_missing_container(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    pod = gpu_pod()
    pod["metadata"]["annotations"][slice_annotation_key("ghost")] = "1x10%"
    assert (
        "annotation slice.bitfusion.io/ghost names no container"
        in validate_pod(pod, "team-a", config, facts).message()
    )


def test_validation_refuses_requests_that_differ_from_limits(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    pod = gpu_pod()
    pod["spec"]["containers"][0]["resources"]["requests"]["bitfusion.io/gpu"] = "10"
    verdict = validate_pod(pod, "team-a", config, facts)
    assert not verdict.allowed and verdict.code == 400


def test_validation_reports_every_problem_of_a_pod_together(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    facts.quota = (QuotaLeft("small", 100, 100),)
    facts.secret_keys = None
    facts.largest_node = 400
    verdict = validate_pod(gpu_pod(amount="5", percent="100"), "team-a", config, facts)
    assert not verdict.allowed
    assert len(verdict.problems) == 4  # server size, node capacity, quota, token Secret
    assert verdict.message().startswith("(1) ")


def test_validation_refuses_raw_units_whoever_asks_for_them(
    make_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    # a pod asking for the device plugin's resource directly: only the webhook writes it
    container = {"name": "c", "image": "x", "resources": {"limits": {"bitfusion.io/gpu": "30"}}}
    verdict = validate_pod(make_pod(container, management=None), "team-a", config, facts)
    assert not verdict.allowed
    assert "container c sets bitfusion.io/gpu directly: only the webhook writes it" in (
        verdict.message()
    )


@pytest.mark.parametrize(
    ("namespace", "pod_namespace"), [("team-a", "team-b"), ("", "team-a"), ("", None)]
)
def test_validation_never_asks_about_a_namespace_other_than_the_pods(
    namespace: str,
    pod_namespace: str | None,
    gpu_pod: Builder,
    config: WebhookConfig,
    facts: MemoryFacts,
) -> None:
    # given a review whose namespace is missing, or differs from the pod's own
    pod = gpu_pod()
    if pod_namespace is None:
        del pod["metadata"]["namespace"]
    else:
        pod["metadata"]["namespace"] = pod_namespace
    verdict = validate_pod(pod, namespace, config, facts)
    # then it is a bad request and the cluster was asked nothing (no quota, no Secret elsewhere)
    assert not verdict.allowed and verdict.code == 400
    assert facts.asked == []


def test_validation_asks_only_about_the_requests_namespace(
    gpu_pod: Builder, config: WebhookConfig, facts: MemoryFacts
) -> None:
    pod = gpu_pod()
    del pod["metadata"]["namespace"]  # at creation the namespace may come from the request alone
    validate_pod(pod, "team-c", config, facts)
    assert facts.asked == ["nodes", "quotas team-c", "secret team-c/bitfusion-secret"]
