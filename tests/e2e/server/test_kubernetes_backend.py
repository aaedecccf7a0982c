"""The server extension's REST API on the kubernetes backend, end to end: the pool and quota read
from the cluster, a GPU kernel launched as a pod through our webhook under bitfusion-sim, followed
over server-sent events, used, listed and stopped — with the notebook server's shipped RBAC and no
call outside it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.contract import QUOTA_RESOURCE
from tests.e2e.kernels.conftest import kernel_objects, lease_slices
from tests.e2e.server.conftest import (
    KERNELSPEC,
    MISSING_IMAGE,
    MISSING_IMAGE_KERNELSPEC,
)
from tests.support import notebook_rbac
from tests.support.server_api import Api, kernel_output

if TYPE_CHECKING:
    from tests.e2e.server.conftest import Server
    from tests.support.cluster_handle import ClusterHandle

Follow = Callable[[str], list[dict[str, Any]]]
STARTUP = ["requested", "created", "scheduled", "started", "locked", "ready"]
PROVE_SLICE = "import os; print(os.environ['BF_SLICE'], os.environ.get('BF_SIM_SLICE', '-'))"
QUOTA_KEY = f"requests.{QUOTA_RESOURCE}"


def _body(response: Any) -> Any:
    return json.loads(response.body)


def _node_units(cluster: ClusterHandle) -> dict[str, int]:
    return {
        node["metadata"]["name"]: int(node["status"]["allocatable"][QUOTA_RESOURCE])
        for node in cluster.api.list("Node")
        if QUOTA_RESOURCE in (node.get("status") or {}).get("allocatable", {})
    }


def _used_on_nodes(pool: dict[str, Any]) -> int:
    return sum(node["used_units"] for node in pool["nodes"])


def _set_quota(cluster: ClusterHandle, namespace: str, hard_units: int) -> None:
    """A GPU quota on the namespace, once the quota controller has counted it (as the API reports
    it from then on)."""
    cluster.api.create(
        "ResourceQuota",
        {"metadata": {"name": "gpu-quota"}, "spec": {"hard": {QUOTA_KEY: str(hard_units)}}},
        namespace,
    )
    cluster.wait_for(
        "ResourceQuota",
        namespace,
        lambda _, quota: QUOTA_KEY in ((quota.get("status") or {}).get("used") or {}),
        describe="the quota controller to count the GPU quota",
    )


def _assert_only_shipped_rbac_was_needed(cluster: ClusterHandle, server: Server) -> None:
    if cluster.control_plane is None or server.user is None:
        return  # a real cluster's audit is not ours to read
    records = notebook_rbac.calls(cluster.control_plane, server.user)
    assert records, "the server called the API as its service account"
    assert [r.describe() for r in records if not r.allowed] == []


def test_pool_and_quota_come_from_the_cluster(
    api: Api, cluster: ClusterHandle, notebook_identity: Server
) -> None:
    namespace = notebook_identity.namespace
    # When the pool is read on the kubernetes backend
    pool = _body(api("GET", "pool"))
    # Then it lists each GPU node with what it offers and what its pods request
    assert pool["backend"] == "kubernetes"
    assert {n["name"]: n["allocatable_units"] for n in pool["nodes"]} == _node_units(cluster)
    for node in pool["nodes"]:
        assert node["allocatable_gpus"] == node["allocatable_units"] / 100
        assert isinstance(node["used_units"], int)
    # and not the embedded simulator's pool, which is no cluster's
    assert (pool["servers"], pool["simulated"], pool["warnings"]) == ([], False, [])

    # When the namespace has no GPU quota, then the quota says so plainly
    quota = _body(api("GET", "quota"))
    assert (quota["has_quota"], quota["namespace"]) == (False, namespace)
    assert (
        quota["message"] == f"No GPU quota: namespace {namespace} does not limit {QUOTA_RESOURCE}."
    )
    assert quota["hard_units"] is None

    # When it gets one of two GPUs, then hard, used and remaining come in units and GPUs
    _set_quota(cluster, namespace, 200)
    quota = _body(api("GET", "quota"))
    assert quota["has_quota"] is True
    assert (quota["hard_units"], quota["used_units"], quota["remaining_units"]) == (200, 0, 200)
    assert (quota["hard_gpus"], quota["used_gpus"], quota["remaining_gpus"]) == (2, 0, 2)
    assert quota["message"] == "2 of 2 GPUs remain (ResourceQuota gpu-quota)."
    _assert_only_shipped_rbac_was_needed(cluster, notebook_identity)


def test_a_gpu_kernel_pod_starts_runs_on_its_slice_and_leaves_nothing(
    *,
    api: Api,
    follow_events: Follow,
    run: Callable[..., Any],
    cluster: ClusterHandle,
    bitfusion_stack: Any,
    notebook_identity: Server,
    jp_serverapp: Any,
) -> None:
    namespace = notebook_identity.namespace
    _set_quota(cluster, namespace, 100)
    used_before = _used_on_nodes(_body(api("GET", "pool")))

    # When a kernel is asked for on half a GPU with the Kubernetes kernelspec
    response = api("POST", "kernels", {"slice": "1x50%", "kernelspec": KERNELSPEC})
    assert response.code == 202, response.body
    kernel_id = _body(response)["id"]
    # Then its start-up streams over server-sent events, in order, until ready
    events = follow_events(kernel_id)
    stages = [e["stage"] for e in events]
    assert [s for s in stages if s in STARTUP] == STARTUP, stages
    assert {e["kernel_id"] for e in events} == {kernel_id}
    assert "Locked 1 GPUs" in next(e["message"] for e in events if e["stage"] == "locked")

    # and it is listed with its slice and its pod, which our webhook wrapped in bitfusion run
    (listed,) = _body(api("GET", "kernels"))
    assert (listed["id"], listed["slice"], listed["units"], listed["kernelspec"]) == (
        kernel_id, "1x50%", 50, KERNELSPEC,
    )  # fmt: skip
    pod = cluster.api.get("Pod", listed["pod"], namespace)
    assert pod["metadata"]["annotations"]["auto-management/status"] == "injected"
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["requests"][QUOTA_RESOURCE] == "50"
    assert container["command"][1:2] == ["run"]

    # and code in it runs under the slice that bitfusion-sim leased for it
    assert run(kernel_output(jp_serverapp, kernel_id, PROVE_SLICE)).split() == (
        ["1x50%", "1x50%" if bitfusion_stack is not None else "-"]
    )
    assert lease_slices(bitfusion_stack, namespace) == (
        ["1x50%"] if bitfusion_stack is not None else []
    )
    # and the pool and the quota count it
    assert _used_on_nodes(_body(api("GET", "pool"))) == used_before + 50
    assert _body(api("GET", "quota"))["used_units"] == 50

    # When it is stopped
    assert api("DELETE", f"kernels/{kernel_id}").code == 204
    # Then the pod, its Secret and its lease are gone, and nothing counts it any more
    assert kernel_objects(cluster, namespace) == []
    assert lease_slices(bitfusion_stack, namespace) == []
    assert _body(api("GET", "kernels")) == []
    assert _body(api("GET", "quota"))["used_units"] == 0
    assert _used_on_nodes(_body(api("GET", "pool"))) == used_before

    # and everything the server did was within the shipped RBAC, which grants nothing it did not use
    _assert_only_shipped_rbac_was_needed(cluster, notebook_identity)
    if cluster.control_plane is not None and notebook_identity.user is not None:
        calls = notebook_rbac.calls(cluster.control_plane, notebook_identity.user)
        assert notebook_rbac.used(calls) == notebook_rbac.granted()


def test_a_launch_over_the_namespace_quota_is_refused_with_409(
    api: Api, cluster: ClusterHandle, notebook_identity: Server, jp_serverapp: Any
) -> None:
    _set_quota(cluster, notebook_identity.namespace, 100)
    # When more than the quota is asked for
    response = api("POST", "kernels", {"slice": "2x60%", "kernelspec": KERNELSPEC})
    # Then the launch is refused with the quota's numbers, and nothing is created
    assert response.code == 409
    assert _body(response) == {
        "message": "2 GPUs × 60 % costs 120 bitfusion.io/gpu units but only 100 of 100 remain "
        "in the quota (ResourceQuota gpu-quota)",
        "field": "slice",
    }
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []
    assert kernel_objects(cluster, notebook_identity.namespace) == []
    _assert_only_shipped_rbac_was_needed(cluster, notebook_identity)


def test_a_kernel_image_that_cannot_be_pulled_fails_with_the_pod_reason_and_leaves_nothing(
    *,
    api: Api,
    follow_events: Follow,
    cluster: ClusterHandle,
    bitfusion_stack: Any,
    notebook_identity: Server,
    jp_serverapp: Any,
) -> None:
    namespace = notebook_identity.namespace
    # When a kernel is launched on an image the cluster cannot pull
    kernel_id = _body(
        api("POST", "kernels", {"slice": "1x50%", "kernelspec": MISSING_IMAGE_KERNELSPEC})
    )["id"]
    # Then its event stream ends with the pod's own reason
    events = follow_events(kernel_id)
    failed = events[-1]
    assert (failed["stage"], failed["final"]) == ("failed", True)
    assert failed["message"].startswith(f"The kernel image {MISSING_IMAGE} cannot be pulled (")
    assert "ErrImagePull" in failed["message"] or "ImagePullBackOff" in failed["message"]
    assert "ready" not in [e["stage"] for e in events]
    # and it is listed as failed with that reason, holding nothing
    (listed,) = _body(api("GET", "kernels"))
    assert listed["state"] == "failed"
    assert failed["message"] in listed["reason"]
    assert kernel_objects(cluster, namespace) == []
    assert lease_slices(bitfusion_stack, namespace) == []
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []
    # and stopping it forgets it
    assert api("DELETE", f"kernels/{kernel_id}").code == 204
    assert _body(api("GET", "kernels")) == []
    _assert_only_shipped_rbac_was_needed(cluster, notebook_identity)


def test_without_the_optional_pods_role_the_pool_shows_what_nodes_offer(
    api: Api, cluster: ClusterHandle, notebook_identity: Server
) -> None:
    if cluster.control_plane is None or notebook_identity.user is None:
        pytest.skip("takes a role binding away on the test cluster")
    namespace = notebook_identity.namespace
    # Given a server bound to the namespaced role and the nodes role only
    notebook_rbac.revoke_pods_role(cluster.control_plane, namespace)
    # When the pool is read
    response = api("GET", "pool")
    # Then each node shows what it offers, and no use it cannot know; nothing fails
    assert response.code == 200
    pool = _body(response)
    assert {n["name"]: n["allocatable_units"] for n in pool["nodes"]} == _node_units(cluster)
    assert {n["used_units"] for n in pool["nodes"]} == {None}
    assert pool["warnings"] == []
    assert api("GET", "quota").code == 200
    # and the one call refused was the pod listing the role would have allowed
    calls = notebook_rbac.calls(cluster.control_plane, notebook_identity.user)
    denied = [r for r in calls if not r.allowed]
    assert [(r.verb, r.resource, r.namespace) for r in denied] == [("list", "pods", None)]
