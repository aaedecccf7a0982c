"""The emulated API server, driven by the official client through ``KubeApi``: verbs, selectors,
patches, watches, Status errors, graceful deletion and garbage collection."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from bf_jupyter.kubeapi import KubeApiError

if TYPE_CHECKING:
    from tests.e2e.cluster_handle import ClusterHandle


def sleeper(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": "busybox:1", "command": ["sleep", "60"]}],
        },
    }


def test_label_and_field_selectors_filter_lists(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    # given pods with different labels
    api = emulator.api
    api.create("Pod", sleeper("a", {"app": "x", "tier": "web"}), emulator_namespace)
    api.create("Pod", sleeper("b", {"app": "y"}), emulator_namespace)
    api.create("Pod", sleeper("c", {"app": "x"}), emulator_namespace)

    def names(**selectors: str) -> list[str]:
        return [p["metadata"]["name"] for p in api.list("Pod", emulator_namespace, **selectors)]

    # then each selector form filters as the API does
    assert names(label_selector="app=x") == ["a", "c"]
    assert names(label_selector="app in (x,y),tier") == ["a"]
    assert names(label_selector="app!=x") == ["b"]
    assert names(label_selector="!tier") == ["b", "c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b,status.phase!=Failed") == ["a", "c"]


def test_unsupported_field_selector_is_refused_like_the_api(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    with pytest.raises(KubeApiError) as refused:
        emulator.api.list("Pod", emulator_namespace, field_selector="spec.containers=x")
    assert refused.value.status == 400
    assert "field label not supported: spec.containers" in str(refused.value)


def test_errors_carry_the_apis_status_reasons(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    api = emulator.api
    with pytest.raises(KubeApiError) as missing:
        api.get("Pod", "nope", emulator_namespace)
    assert (missing.value.status, missing.value.reason, str(missing.value)) == (
        404,
        "NotFound",
        'pods "nope" not found',
    )
    api.create("Secret", {"metadata": {"name": "s"}, "stringData": {"k": "v"}}, emulator_namespace)
    with pytest.raises(KubeApiError) as taken:
        api.create("Secret", {"metadata": {"name": "s"}}, emulator_namespace)
    assert (taken.value.status, taken.value.reason) == (409, "AlreadyExists")
    with pytest.raises(KubeApiError) as nowhere:
        api.create("Secret", {"metadata": {"name": "s"}}, "no-such-namespace")
    assert (nowhere.value.status, str(nowhere.value)) == (
        404,
        'namespaces "no-such-namespace" not found',
    )
    with pytest.raises(KubeApiError) as invalid:
        api.create(
            "Pod",
            {"metadata": {"name": "Bad_Name"}, "spec": {"containers": []}},
            emulator_namespace,
        )
    assert invalid.value.status == 422 and "spec.containers: Required value" in str(invalid.value)


def test_patches_merge_strategically_by_key_and_apply_json_patch(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    # given a pod with labels and a ConfigMap
    api = emulator.api
    api.create("Pod", sleeper("p", {"keep": "1", "drop": "1"}), emulator_namespace)
    # when a strategic-merge patch (the client's default for dicts) changes labels and one container's image
    patched = api.patch(
        "Pod",
        "p",
        {
            "metadata": {"labels": {"drop": None, "new": "1"}},
            "spec": {"containers": [{"name": "main", "image": "busybox:2"}]},
        },
        emulator_namespace,
    )
    # then labels merge, null deletes and the container list merges by name (command kept)
    assert patched["metadata"]["labels"] == {"keep": "1", "new": "1"}
    assert patched["spec"]["containers"][0]["image"] == "busybox:2"
    assert patched["spec"]["containers"][0]["command"] == ["sleep", "60"]
    # and a JSON patch (a list body) applies operations in order
    api.create("ConfigMap", {"metadata": {"name": "cm"}, "data": {"a": "1"}}, emulator_namespace)
    operations = [
        {"op": "replace", "path": "/data/a", "value": "2"},
        {"op": "add", "path": "/data/b", "value": "3"},
    ]
    changed = emulator.core_v1().patch_namespaced_config_map("cm", emulator_namespace, operations)
    assert changed.data == {"a": "2", "b": "3"}


def test_pod_spec_is_immutable_except_images(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    emulator.api.create("Pod", sleeper("p"), emulator_namespace)
    with pytest.raises(KubeApiError) as refused:
        emulator.api.patch("Pod", "p", {"spec": {"restartPolicy": "Never"}}, emulator_namespace)
    assert refused.value.status == 422 and "pod updates may not change fields" in str(refused.value)


def test_watch_resumes_from_a_resource_version(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    # given a ConfigMap created, then changed twice
    api = emulator.api
    created = api.create(
        "ConfigMap", {"metadata": {"name": "w"}, "data": {"n": "0"}}, emulator_namespace
    )
    api.patch("ConfigMap", "w", {"data": {"n": "1"}}, emulator_namespace)
    api.patch("ConfigMap", "w", {"data": {"n": "2"}}, emulator_namespace)
    api.delete("ConfigMap", "w", emulator_namespace)
    # when watching from the creation's resourceVersion
    events = [
        (e.type, e.object.get("data", {}).get("n"))
        for e in api.watch(
            "ConfigMap",
            emulator_namespace,
            resource_version=created["metadata"]["resourceVersion"],
            timeout_seconds=1,
        )
    ]
    # then exactly the later changes arrive, in order
    assert events == [("MODIFIED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]


def test_watch_without_version_replays_current_state_then_streams(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    api = emulator.api
    api.create("ConfigMap", {"metadata": {"name": "one", "labels": {"w": "1"}}}, emulator_namespace)
    api.create("ConfigMap", {"metadata": {"name": "other"}}, emulator_namespace)
    seen = [
        (e.type, e.object["metadata"]["name"])
        for e in api.watch("ConfigMap", emulator_namespace, label_selector="w=1", timeout_seconds=1)
    ]
    assert seen == [("ADDED", "one")]


def test_watch_from_a_version_older_than_the_history_is_gone() -> None:
    from tests.emulator import errors
    from tests.emulator.kinds import resource_for_kind
    from tests.emulator.selectors import object_filter
    from tests.emulator.store import Store

    config_maps = resource_for_kind("ConfigMap")
    store = Store(history=3)
    for index in range(5):
        store.create(config_maps, {"metadata": {"name": f"c{index}", "namespace": "n"}})
    everything = object_filter(config_maps, "", "")
    with pytest.raises(errors.ApiError) as gone:
        store.open_watch(config_maps, "n", everything, "1")
    assert (gone.value.code, gone.value.reason) == (410, "Expired")
    assert "too old resource version" in gone.value.message
    recent = store.open_watch(config_maps, "n", everything, str(int(store.revision) - 1))
    assert recent.queue.qsize() == 1


def test_put_with_a_stale_resource_version_conflicts(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    from kubernetes.client import ApiException

    api = emulator.api
    stale = api.create(
        "ConfigMap", {"metadata": {"name": "c"}, "data": {"v": "1"}}, emulator_namespace
    )
    api.patch("ConfigMap", "c", {"data": {"v": "2"}}, emulator_namespace)
    core = emulator.core_v1()
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("c", emulator_namespace, stale)
    body = json.loads(conflict.value.body or "{}")
    assert (conflict.value.status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]


def test_owned_objects_are_garbage_collected_with_their_owner(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    # given a Secret owned by a pod
    api = emulator.api
    pod = api.create("Pod", sleeper("owner"), emulator_namespace)
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": pod["metadata"]["uid"]}
    api.create(
        "Secret", {"metadata": {"name": "owned", "ownerReferences": [owner]}}, emulator_namespace
    )
    # when the pod is deleted
    api.delete("Pod", "owner", emulator_namespace, grace_period_seconds=0)
    # then the Secret goes too
    emulator.wait_for(
        "Secret",
        emulator_namespace,
        lambda event, _obj: event == "DELETED",
        field_selector="metadata.name=owned",
        describe="owned secret to be collected",
        initial=lambda items: not items,
    )


def test_deleting_a_namespace_removes_everything_in_it(emulator: ClusterHandle) -> None:
    namespace = emulator.create_namespace("gone")
    emulator.api.create("Pod", sleeper("p"), namespace)
    emulator.api.create("ConfigMap", {"metadata": {"name": "c"}}, namespace)
    emulator.wait_for_pod_phase(namespace, "p", "Running")
    emulator.delete_namespace(namespace)
    assert emulator.api.list("Pod", namespace) == []
    with pytest.raises(KubeApiError) as missing:
        emulator.api.get("Namespace", namespace)
    assert missing.value.not_found
