"""A user spawns a notebook server on a GPU slice through a real JupyterHub and KubeSpawner: the
spawn form posted as a browser posts it, our webhook wrapping ``jupyterhub-singleuser`` in
``bitfusion run``, the real scheduler placing the pod, the process-kubelet running it; the hub then
reaches the server, the user's token works, and stopping the server releases the slice."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import requests

from bf_jupyter.contract import ANNOTATION_STATUS, QUOTA_RESOURCE, STATUS_INJECTED
from tests.support import hub_rbac, notebook_rbac

if TYPE_CHECKING:
    from tests.e2e.hub.conftest import StartHub
    from tests.support.cluster_handle import ClusterHandle
    from tests.support.hub_process import RunningHub
    from tests.support.hub_rbac import HubIdentity
    from tests.support.stack import BitfusionStack

USER = "alice"
POD = f"jupyter-{USER}"
HALF_GPU = {"profile": "bitfusion-gpu", "profile-option-bitfusion-gpu--gpu": "1x50"}


def test_a_user_spawns_a_server_on_the_slice_chosen_in_the_form_and_stopping_releases_it(
    hub: RunningHub,
    hub_identity: HubIdentity,
    cluster: ClusterHandle,
    bitfusion_stack: BitfusionStack,
    namespace: str,
) -> None:
    # given alice logged in, looking at the spawn form
    browser = hub.browser(USER).login()
    assert "1 GPU × 50 %" in browser.spawn_form()

    # when she picks half a GPU and starts
    outcome = browser.spawn(HALF_GPU)

    # then the server is up, in a pod our webhook wrapped in `bitfusion run -n 1 -p 0.5`
    assert outcome.ready, f"{outcome.message}\n{hub.process.tail(40)}"
    pod = cluster.api.get("Pod", POD, namespace)
    assert pod["metadata"]["annotations"][ANNOTATION_STATUS] == STATUS_INJECTED
    container = pod["spec"]["containers"][0]
    run = container["command"]
    assert run[0].endswith("/bin/bitfusion")
    assert run[1:7] == ["run", "-n", "1", "-p", "0.5", "--"]
    assert run[7] == "jupyterhub-singleuser" and run.count("jupyterhub-singleuser") == 1
    assert not container.get("args")
    assert container["resources"]["limits"][QUOTA_RESOURCE] == "50"
    assert pod["spec"]["nodeName"]  # placed by the scheduler on the advertised capacity
    assert len(bitfusion_stack.leases(namespace)) == 1

    # and the hub reaches it through the proxy with alice's API token
    token = hub.user_token(USER)
    status = requests.get(
        f"{hub.url}/user/{USER}/api/status",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert status.status_code == 200, status.text
    anonymous = requests.get(f"{hub.url}/user/{USER}/api/status", timeout=30)
    assert anonymous.status_code in (302, 403)

    # when she stops it, the pod goes and the slice is released
    hub.stop_server(USER)
    cluster.wait_for_pod_gone(namespace, POD, timeout=60)
    assert bitfusion_stack.leases(namespace) == []

    # and the hub did all of it with exactly the shipped RBAC: nothing refused, nothing unused
    assert cluster.control_plane is not None
    calls = notebook_rbac.calls(cluster.control_plane, hub_identity.user)
    assert [c.describe() for c in calls if not c.allowed] == []
    assert notebook_rbac.used(calls) == hub_rbac.granted()


def test_the_spawn_form_marks_what_the_quota_cannot_hold_and_shows_what_remains(
    start_hub: StartHub, cluster: ClusterHandle, namespace: str
) -> None:
    # given 40 units (0.4 GPU) of GPU quota in the namespace the hub spawns into
    with_quota(cluster, namespace, 40)
    hub = start_hub()

    # when alice opens the spawn form
    form = hub.browser(USER).login().spawn_form()

    # then a quarter GPU is offered, half a GPU and a whole one are disabled, each with its reason
    assert re.search(r'<option value="1x25"\s+selected>', form), form
    assert re.search(r'<option value="1x50" disabled title="[^"]*costs 50', form), form
    assert re.search(r'<option value="1x100" disabled', form), form
    assert "only 40 of 40 remain in the quota (ResourceQuota gpu-quota)" in form
    assert "Quota: 0.4 of 0.4 GPUs remain (ResourceQuota gpu-quota)." in form


def test_a_typed_slice_the_quota_refuses_shows_the_api_servers_message(
    start_hub: StartHub, cluster: ClusterHandle, namespace: str
) -> None:
    # given 40 units of quota
    with_quota(cluster, namespace, 40)
    hub = start_hub()

    # when alice types half a GPU in the free-form field
    outcome = (
        hub.browser(USER)
        .login()
        .spawn(
            {
                "profile": "bitfusion-gpu",
                "profile-option-bitfusion-gpu--gpu--unlisted-choice": "1x50%",
            }
        )
    )

    # then the spawn fails with the API server's refusal, and no pod was created
    assert not outcome.ready
    assert "exceeded quota" in outcome.message or "quota" in outcome.message, outcome
    assert "gpu-quota" in outcome.message, outcome
    assert cluster.api.list("Pod", namespace) == []


def test_a_typed_slice_that_does_not_parse_shows_the_slice_error(hub: RunningHub) -> None:
    outcome = (
        hub.browser(USER)
        .login()
        .spawn(
            {
                "profile": "bitfusion-gpu",
                "profile-option-bitfusion-gpu--gpu--unlisted-choice": "1x150%",
            }
        )
    )
    assert not outcome.ready
    assert "gpu-percent 150 is out of range" in outcome.message, outcome


def test_a_missing_image_fails_the_spawn_at_once_with_the_pull_error(
    start_hub: StartHub, cluster: ClusterHandle, namespace: str
) -> None:
    # given a hub whose notebook image cannot be pulled
    hub = start_hub('c.KubeSpawner.image = "registry.invalid/bf-notebook:missing"\n')

    # when alice starts a GPU server
    outcome = hub.browser(USER).login().spawn(HALF_GPU)

    # then the spawn fails with the kubelet's reason, long before start_timeout, and leaves no pod
    assert not outcome.ready
    assert "ErrImagePull" in outcome.message or "ImagePullBackOff" in outcome.message, outcome
    assert "registry.invalid/bf-notebook:missing" in outcome.message
    cluster.wait_for_pod_gone(namespace, POD, timeout=60)


def with_quota(cluster: ClusterHandle, namespace: str, units: int) -> None:
    """A ResourceQuota on the GPU units, once the quota controller has filled in its status."""
    cluster.api.create(
        "ResourceQuota",
        {
            "metadata": {"name": "gpu-quota"},
            "spec": {"hard": {f"requests.{QUOTA_RESOURCE}": str(units)}},
        },
        namespace,
    )
    cluster.wait_for(
        "ResourceQuota",
        namespace,
        lambda _event, obj: bool((obj.get("status") or {}).get("hard")),
        describe="the quota's status",
    )


# The example's culler, with seconds instead of an hour (one more line: the culler's command).
CULL_FAST = """
import sys
c.JupyterHub.services[0]["command"] = [
    sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=10", "--cull-every=5"
]
"""


def test_an_idle_server_is_culled_and_its_slice_released(
    start_hub: StartHub, cluster: ClusterHandle, bitfusion_stack: BitfusionStack, namespace: str
) -> None:
    # given the example's idle culler, with a 10 s timeout
    hub = start_hub(CULL_FAST)

    # when alice starts a server on half a GPU and leaves it alone
    outcome = hub.browser(USER).login().spawn(HALF_GPU)
    assert outcome.ready, outcome.message
    assert len(bitfusion_stack.leases(namespace)) == 1

    # then the culler stops it, and the slice is released
    cluster.wait_for_pod_gone(namespace, POD, timeout=120)
    assert bitfusion_stack.leases(namespace) == []
    hub.wait_stopped(USER)
    assert "" not in hub.api("GET", f"users/{USER}").json()["servers"]
