"""Cluster facts from the Kubernetes API: what is read, what is kept, and failures as FactUnavailable."""

from __future__ import annotations

from typing import Any

import pytest

from bf_jupyter.cluster.webhook.cluster_view import KubeClusterFacts, NoClusterFacts
from bf_jupyter.cluster.webhook.validate import FactUnavailable, QuotaLeft
from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable


class FakeApi:
    """Answers like ``KubeApi`` from dicts; ``error`` is raised by every call when set."""

    def __init__(
        self, objects: dict[str, list[dict[str, Any]]], error: Exception | None = None
    ) -> None:
        self.objects = objects
        self.error = error
        self.calls: list[tuple[str, str | None]] = []

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        self.calls.append((kind, namespace))
        if self.error:
            raise self.error
        return self.objects.get(kind, [])

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append((kind, namespace))
        if self.error:
            raise self.error
        for item in self.objects.get(kind, []):
            if item["metadata"]["name"] == name:
                return item
        raise KubeApiError(f"{kind} {name} not found", status=404, reason="NotFound")


def node(units: str | None, *, unschedulable: bool = False) -> dict[str, Any]:
    allocatable = {"cpu": "8"} | ({"bitfusion.io/gpu": units} if units else {})
    return {"spec": {"unschedulable": unschedulable}, "status": {"allocatable": allocatable}}


def facts_for(api: FakeApi, **kwargs: Any) -> KubeClusterFacts:
    return KubeClusterFacts(api, **kwargs)  # type: ignore[arg-type]


def test_quota_on_bitfusion_units_is_read_from_spec_and_status() -> None:
    api = FakeApi({"ResourceQuota": [
        {"metadata": {"name": "gpus"}, "spec": {"hard": {"requests.bitfusion.io/gpu": "200"}},
         "status": {"used": {"requests.bitfusion.io/gpu": "150"}}},
        {"metadata": {"name": "cpu"}, "spec": {"hard": {"requests.cpu": "10"}}},
        {"metadata": {"name": "fresh"}, "spec": {"hard": {"requests.bitfusion.io/gpu": "1k"}}},
    ]})  # fmt: skip
    assert facts_for(api).quotas("team-a") == (
        QuotaLeft("gpus", 200, 150),
        QuotaLeft("fresh", 1000, 0),
    )
    assert api.calls == [("ResourceQuota", "team-a")]


def test_the_largest_schedulable_node_counts_and_is_kept_briefly() -> None:
    now = [0.0]
    api = FakeApi({"Node": [node("400"), node("800", unschedulable=True), node(None), node("300")]})
    facts = facts_for(api, node_cache_seconds=10, clock=lambda: now[0])
    assert facts.largest_node_units() == 400
    now[0] = 9.0
    assert facts.largest_node_units() == 400 and len(api.calls) == 1
    now[0] = 10.0
    facts.largest_node_units()
    assert len(api.calls) == 2


def test_only_the_names_of_the_token_secrets_keys_are_returned() -> None:
    secret = {
        "metadata": {"name": "bitfusion-secret"},
        "data": {"ca.crt": "c2VjcmV0", "client.yaml": "eA=="},
    }
    facts = facts_for(FakeApi({"Secret": [secret]}))
    assert facts.token_secret_keys("team-a", "bitfusion-secret") == frozenset(
        {"ca.crt", "client.yaml"}
    )
    assert facts.token_secret_keys("team-a", "other") is None


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (KubeUnavailable("Kubernetes API unreachable: refused"), "unreachable"),
        (
            KubeApiError("secrets is forbidden", status=403, reason="Forbidden"),
            r"refused \(Forbidden",
        ),
    ],
)
def test_api_failures_become_unavailable_facts(error: Exception, message: str) -> None:
    facts = facts_for(FakeApi({}, error))
    for ask in (
        lambda: facts.quotas("a"),
        facts.largest_node_units,
        lambda: facts.token_secret_keys("a", "s"),
    ):
        with pytest.raises(FactUnavailable, match=message):
            ask()


def test_without_an_api_every_fact_is_unavailable_with_the_reason() -> None:
    facts = NoClusterFacts("no Kubernetes API configured")
    with pytest.raises(FactUnavailable, match="no Kubernetes API configured"):
        facts.largest_node_units()
    assert facts.blocking is False
