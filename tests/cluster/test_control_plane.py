"""The test cluster's control plane behaves as a production one: TLS and kubectl, Node and RBAC
authorization, ResourceQuota admission, loopback ClusterIPs, garbage collection, and a start and a
stop that leave nothing behind."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.cluster.control_plane import ControlPlane, ControlPlaneError

pytestmark = pytest.mark.slow


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g}s"
        time.sleep(0.2)


def processes_under(root: Path) -> list[psutil.Process]:
    """Our child processes whose command line names ``root`` (the components of that plane)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if any(str(root) in argument for argument in process.cmdline()):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def test_kubectl_reaches_a_ready_apiserver_of_the_pinned_release(
    control_plane: ControlPlane,
) -> None:
    ready = control_plane.kubectl("get", "--raw", "/readyz")
    version = control_plane.kubectl("version", "-o", "json")

    assert (ready.returncode, ready.stdout.strip()) == (0, "ok"), ready.stderr
    assert json.loads(version.stdout)["serverVersion"]["gitVersion"] == "v1.37.2"


def test_a_node_cannot_read_a_secret_it_runs_no_pod_for(
    control_plane: ControlPlane, namespace: str
) -> None:
    created = control_plane.kubectl(
        "-n", namespace, "create", "secret", "generic", "token", "--from-literal=key=value"
    )
    assert created.returncode == 0, created.stderr

    node = control_plane.node_kubeconfig("node-a")
    read = control_plane.kubectl("-n", namespace, "get", "secret", "token", kubeconfig=node)

    assert read.returncode != 0
    assert 'User "system:node:node-a" cannot get resource "secrets"' in read.stderr
    assert "no relationship found between node 'node-a' and this object" in read.stderr


def test_an_unprivileged_service_account_is_forbidden(
    control_plane: ControlPlane, namespace: str
) -> None:
    assert (
        control_plane.kubectl("-n", namespace, "create", "serviceaccount", "nobody").returncode == 0
    )
    token = control_plane.kubectl("-n", namespace, "create", "token", "nobody")
    assert token.returncode == 0, token.stderr

    listed = control_plane.kubectl(
        f"--server={control_plane.server}",
        f"--certificate-authority={control_plane.ca_file}",
        f"--token={token.stdout.strip()}",
        "-n",
        namespace,
        "get",
        "secrets",
        kubeconfig=Path("/dev/null"),
    )

    assert listed.returncode != 0
    assert (
        f'User "system:serviceaccount:{namespace}:nobody" cannot list resource "secrets"'
        in listed.stderr
    )


def test_resource_quota_admission_refuses_an_over_quota_pod(
    control_plane: ControlPlane, namespace: str
) -> None:
    quota = control_plane.kubectl("-n", namespace, "create", "quota", "pods", "--hard=pods=0")
    assert quota.returncode == 0, quota.stderr
    wait_until(
        lambda: (
            control_plane.kubectl(
                "-n", namespace, "get", "quota", "pods", "-o", "jsonpath={.status.hard.pods}"
            ).stdout
            == "0"
        ),
        "the quota controller's first status of the quota",
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "one-too-many"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }

    created = control_plane.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(pod))

    assert created.returncode != 0
    assert (
        'pods "one-too-many" is forbidden: exceeded quota: pods, requested: pods=1, '
        "used: pods=0, limited: pods=0" in created.stderr
    )


def test_a_service_gets_a_loopback_cluster_ip(control_plane: ControlPlane, namespace: str) -> None:
    created = control_plane.kubectl(
        "-n", namespace, "create", "service", "clusterip", "web", "--tcp=80:8080"
    )
    assert created.returncode == 0, created.stderr

    cluster_ip = control_plane.kubectl(
        "-n", namespace, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"
    ).stdout

    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(control_plane.service_cidr)


def test_the_garbage_collector_deletes_an_owned_object(
    control_plane: ControlPlane, namespace: str
) -> None:
    owner = control_plane.kubectl("-n", namespace, "create", "configmap", "owner", "-o", "json")
    assert owner.returncode == 0, owner.stderr
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": json.loads(owner.stdout)["metadata"]["uid"],
                }
            ],
        },
    }
    assert (
        control_plane.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(owned))
    ).returncode == 0

    control_plane.kubectl("-n", namespace, "delete", "configmap", "owner", "--wait=false")

    wait_until(
        lambda: (
            "NotFound" in control_plane.kubectl("-n", namespace, "get", "configmap", "owned").stderr
        ),
        "the garbage collection of the owned ConfigMap",
    )


def test_stop_ends_every_process_and_removes_the_root(tmp_path: Path) -> None:
    root = tmp_path / "plane"
    plane = ControlPlane(root).start()
    pids = plane.pids()
    assert len(pids) == 4
    assert len(processes_under(root)) == 4

    plane.stop()

    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    assert processes_under(root) == []
    assert not root.exists()


def test_a_component_that_fails_is_named_with_its_log_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    root = tmp_path / "plane"
    # etcd and the apiserver are up when the controller manager fails: both must be stopped too.
    plane = ControlPlane(root, extra_args={"kube-controller-manager": ["--no-such-flag"]})

    with pytest.raises(ControlPlaneError) as failure:
        plane.start()

    message = str(failure.value)
    assert message.startswith("kube-controller-manager exited with code 1 while starting")
    assert "unknown flag: --no-such-flag" in message
    assert processes_under(root) == []
    assert not root.exists()


def test_extra_args_for_an_unknown_component_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="extra_args names kubelet: use one of etcd, "):
        ControlPlane(tmp_path / "plane", extra_args={"kubelet": ["--v=4"]})
