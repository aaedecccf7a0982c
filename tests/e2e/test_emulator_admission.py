"""The emulated admission chain against a tiny webhook of our own, over real HTTPS: AdmissionReview v1
bodies, JSONPatch, order and reinvocation, matchConditions in CEL, namespaceSelector,
failurePolicy, timeoutSeconds, dry run and kube-apiserver's wording for denials and failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bf_jupyter.kubeapi import KubeApi, KubeApiError
from tests.e2e import tiny_webhook
from tests.e2e.cluster_handle import ClusterHandle
from tests.e2e.conftest import real_kubeconfig
from tests.e2e.tiny_webhook import TinyWebhook, configuration

Obj = dict[str, Any]
MUTATING = "MutatingWebhookConfiguration"
VALIDATING = "ValidatingWebhookConfiguration"


def annotated(key: str) -> list[Obj]:
    return [
        {
            "name": "annotated",
            "expression": f"has(object.metadata.annotations) && '{key}' in object.metadata.annotations",
        }
    ]


CONFIGURATIONS = [
    configuration(
        MUTATING,
        "b-tag",
        [{"name": "tag.tiny.test", "path": "tag", "matchConditions": annotated("tiny/tag")}],
    ),
    configuration(
        MUTATING,
        "a-label",
        [
            {
                "name": "label.tiny.test",
                "path": "label",
                "reinvocationPolicy": "IfNeeded",
                "matchConditions": annotated("tiny/label"),
                "namespaceSelector": {
                    "matchExpressions": [{"key": "tiny/skip", "operator": "DoesNotExist"}]
                },
            }
        ],
    ),
    configuration(
        VALIDATING,
        "checks",
        [
            {
                "name": "deny.tiny.test",
                "path": "deny",
                "matchConditions": [
                    *annotated("tiny/deny"),
                    {
                        "name": "says-yes",
                        "expression": "object.metadata.annotations['tiny/deny'].lowerAscii() == 'yes'",
                    },
                ],
            },
            {
                "name": "gone-ignore.tiny.test",
                "path": "x",
                "service": "absent",
                "failurePolicy": "Ignore",
                "matchConditions": annotated("tiny/gone-ignore"),
            },
            {
                "name": "gone-fail.tiny.test",
                "path": "x",
                "service": "absent",
                "failurePolicy": "Fail",
                "matchConditions": annotated("tiny/gone-fail"),
            },
            {
                "name": "slow.tiny.test",
                "path": "slow",
                "timeoutSeconds": 1,
                "matchConditions": annotated("tiny/slow"),
            },
            {
                "name": "cel-error.tiny.test",
                "path": "deny",
                "failurePolicy": "Fail",
                "matchConditions": [
                    *annotated("tiny/cel-error"),
                    {
                        "name": "missing-key",
                        "expression": "object.metadata.labels['absent'] == 'x'",
                    },
                ],
            },
        ],
    ),
]


@pytest.fixture(scope="module")
def webhooked() -> Iterator[tuple[ClusterHandle, TinyWebhook]]:
    if real_kubeconfig() is not None:
        pytest.skip("tests of the emulator itself do not run against a real cluster")
    from tests.emulator.cluster import EmulatedCluster

    webhook = TinyWebhook(slow_seconds=3).start()
    cluster = EmulatedCluster().start()
    try:
        for config in CONFIGURATIONS:
            for entry in config["webhooks"]:
                entry["clientConfig"]["caBundle"] = (
                    __import__("base64").b64encode(webhook.ca_pem).decode()
                )
        cluster.use_webhooks(CONFIGURATIONS)
        cluster.expose_service(
            tiny_webhook.SERVICE_NAMESPACE, tiny_webhook.SERVICE_NAME, ("127.0.0.1", webhook.port)
        )
        api = KubeApi.connect(kubeconfig=str(cluster.kubeconfig))
        yield ClusterHandle(cluster.kubeconfig, api, cluster), webhook
        api.close()
    finally:
        cluster.stop()
        webhook.stop()


@pytest.fixture
def ns(webhooked: tuple[ClusterHandle, TinyWebhook]) -> Iterator[str]:
    handle, _ = webhooked
    name = handle.create_namespace("adm")
    yield name
    handle.delete_namespace(name)


def pod(name: str, *annotations: str) -> Obj:
    return {
        "metadata": {"name": name, "annotations": dict.fromkeys(annotations, "yes")},
        "spec": {
            "containers": [{"name": "main", "image": "python:3", "command": ["true"]}],
            "restartPolicy": "Never",
        },
    }


def test_mutating_webhook_gets_a_v1_review_and_its_patch_is_applied(
    webhooked: tuple[ClusterHandle, TinyWebhook], ns: str
) -> None:
    handle, webhook = webhooked
    before = len(webhook.calls("label"))
    created = handle.api.create("Pod", pod("labelled", "tiny/label"), ns)
    assert created["metadata"]["labels"]["tiny-webhook/seen"] == str(before + 1)
    request = webhook.calls("label")[-1]
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert (request["namespace"], request["name"], request["operation"], request["dryRun"]) == (
        ns,
        "labelled",
        "CREATE",
        False,
    )
    assert request["userInfo"]["username"] == "kubernetes-admin"
    assert request["object"]["spec"]["restartPolicy"] == "Never" and request["oldObject"] is None
    assert request["uid"]


def test_match_conditions_keep_other_pods_away_from_the_webhook(
    webhooked: tuple[ClusterHandle, TinyWebhook], ns: str
) -> None:
    handle, webhook = webhooked
    before = len(webhook.reviews)
    created = handle.api.create("Pod", pod("plain"), ns)
    assert len(webhook.reviews) == before
    assert "tiny-webhook/seen" not in (created["metadata"].get("labels") or {})


def test_namespace_selector_excludes_labelled_namespaces(
    webhooked: tuple[ClusterHandle, TinyWebhook],
) -> None:
    handle, webhook = webhooked
    skipped = handle.create_namespace("skip", labels={"tiny/skip": "true"})
    try:
        before = len(webhook.calls("label"))
        created = handle.api.create("Pod", pod("unseen", "tiny/label"), skipped)
        assert len(webhook.calls("label")) == before
        assert "tiny-webhook/seen" not in (created["metadata"].get("labels") or {})
    finally:
        handle.delete_namespace(skipped)


def test_if_needed_webhook_is_reinvoked_after_a_later_change(
    webhooked: tuple[ClusterHandle, TinyWebhook], ns: str
) -> None:
    # given label (IfNeeded, called first by name) and tag (changes the pod afterwards)
    handle, webhook = webhooked
    before = len(webhook.calls("label"))
    created = handle.api.create("Pod", pod("both", "tiny/label", "tiny/tag"), ns)
    # then label ran twice — the second time seeing tag's annotation — and tag once
    assert len(webhook.calls("label")) == before + 2
    assert (
        webhook.calls("label")[-1]["object"]["metadata"]["annotations"]["tiny-webhook/tagged"]
        == "yes"
    )
    assert created["metadata"]["annotations"]["tiny-webhook/tagged"] == "yes"


def test_validating_denial_comes_back_as_the_apis_error(
    webhooked: tuple[ClusterHandle, TinyWebhook], ns: str
) -> None:
    handle, _ = webhooked
    with pytest.raises(KubeApiError) as denied:
        handle.api.create("Pod", pod("refused", "tiny/deny"), ns)
    assert (denied.value.status, denied.value.reason) == (403, "Forbidden")
    assert (
        str(denied.value)
        == 'admission webhook "deny.tiny.test" denied the request: tiny webhook refuses pod refused'
    )
    assert handle.api.list("Pod", ns, field_selector="metadata.name=refused") == []


def test_failure_policy_ignore_admits_and_fail_refuses_when_the_webhook_is_unreachable(
    webhooked: tuple[ClusterHandle, TinyWebhook], ns: str
) -> None:
    handle, _ = webhooked
    handle.api.create("Pod", pod("ignored", "tiny/gone-ignore"), ns)
    with pytest.raises(KubeApiError) as failed:
        handle.api.create("Pod", pod("failed", "tiny/gone-fail"), ns)
    assert (failed.value.status, failed.value.reason) == (500, "InternalError")
    assert 'failed calling webhook "gone-fail.tiny.test"' in str(failed.value)


def test_timeout_seconds_bounds_a_slow_webhook(
    webhooked: tuple[ClusterHandle, TinyWebhook], ns: str
) -> None:
    handle, _ = webhooked
    with pytest.raises(KubeApiError) as failed:
        handle.api.create("Pod", pod("slow", "tiny/slow"), ns)
    assert failed.value.status == 500
    assert 'failed calling webhook "slow.tiny.test"' in str(failed.value)
    assert "context deadline exceeded" in str(failed.value)
    assert "?timeout=1s" in str(failed.value)


def test_match_condition_error_follows_the_failure_policy(
    webhooked: tuple[ClusterHandle, TinyWebhook], ns: str
) -> None:
    handle, _ = webhooked
    with pytest.raises(KubeApiError) as failed:
        handle.api.create("Pod", pod("cel", "tiny/cel-error"), ns)
    assert failed.value.status == 500
    assert "failed to evaluate match conditions" in str(failed.value)


def test_dry_run_reaches_the_webhook_and_stores_nothing(
    webhooked: tuple[ClusterHandle, TinyWebhook], ns: str
) -> None:
    handle, webhook = webhooked
    result = handle.core_v1().create_namespaced_pod(ns, pod("dry", "tiny/label"), dry_run="All")
    assert result.metadata.labels["tiny-webhook/seen"]
    assert webhook.calls("label")[-1]["dryRun"] is True
    assert handle.api.list("Pod", ns, field_selector="metadata.name=dry") == []


def test_cel_provides_kubernetes_string_functions_and_refuses_unknown_ones() -> None:
    from tests.emulator import match_conditions

    conditions = match_conditions.load(
        [{"name": "c", "expression": "object.metadata.name.lowerAscii().split('-')[0] == 'gpu'"}]
    )
    assert match_conditions.evaluate(conditions, {"object": {"metadata": {"name": "GPU-pod"}}}) == (
        True,
        "",
    )
    with pytest.raises(match_conditions.UnsupportedCel, match="allowed, check, group, resource"):
        match_conditions.load(
            [
                {
                    "name": "authz",
                    "expression": "authorizer.group('').resource('pods').check('create').allowed()",
                }
            ]
        )


def test_shipped_match_conditions_stay_within_the_emulated_cel() -> None:
    """Every matchCondition in the rendered cluster/ manifests compiles with the emulator's CEL
    (cel-python plus the Kubernetes functions it adds) and evaluates on a GPU pod and a plain one."""
    from tests.e2e.stack import REPO
    from tests.emulator.webhook_config import kubectl_path, load_webhooks, render_kustomization

    if not (REPO / "cluster" / "kustomization.yaml").exists() or kubectl_path() is None:
        pytest.skip("needs the cluster/ manifests and kubectl")
    mutating, validating = load_webhooks(render_kustomization(REPO / "cluster"))
    assert mutating and validating
    from tests.emulator import match_conditions

    gpu = pod("gpu", "auto-management/bitfusion")
    gpu["spec"]["containers"][0]["resources"] = {"limits": {"bitfusion.io/gpu-amount": "1"}}
    plain = pod("plain")
    plain["spec"]["containers"][0]["resources"] = {}
    for webhook in [*mutating, *validating]:
        for subject, expected in ((gpu, True), (plain, False)):
            variables = {"object": subject, "oldObject": None, "request": {"operation": "CREATE"}}
            assert match_conditions.evaluate(webhook.conditions, variables) == (expected, ""), (
                webhook.name
            )
