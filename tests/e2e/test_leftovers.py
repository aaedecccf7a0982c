"""The fixtures leave nothing behind: no process, no lease, no directory — even with pods running
(and holding a slice) when they stop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bf_jupyter.contract import QUOTA_RESOURCE
from tests.e2e.conftest import real_kubeconfig

pytestmark = pytest.mark.skipif(
    real_kubeconfig() is not None, reason="checks the emulator's own clean-up"
)


def descendants(pid: int, *, mentioning: Path) -> set[int]:
    """Live processes below ``pid`` whose environment mentions ``mentioning`` (from /proc; zombies
    are not counted as left behind). Session fixtures of other tests run pods and servers in this
    same process tree at the same time, so only processes of the cluster under test count: each of
    its processes carries its directory in the environment (pod dir, BF_SIM_HOME)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    marker = str(mentioning).encode()
    return {child for child in found if marker in _environment(child)}


def _environment(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "environ").read_bytes()
    except OSError:
        return b""


def test_emulated_cluster_stops_running_pods_and_removes_its_files() -> None:
    from bf_jupyter.kubeapi import KubeApi
    from tests.e2e.cluster_handle import ClusterHandle
    from tests.emulator.cluster import EmulatedCluster

    cluster = EmulatedCluster().start()
    api = KubeApi.connect(kubeconfig=str(cluster.kubeconfig))
    handle = ClusterHandle(cluster.kubeconfig, api, cluster)
    namespace = handle.create_namespace("left")
    pod = {
        "metadata": {"name": "sleeper"},
        "spec": {
            "containers": [
                {"name": "main", "image": "a:1", "command": ["sh", "-c", "sleep 300 & sleep 300"]}
            ]
        },
    }
    api.create("Pod", pod, namespace)
    handle.wait_for_pod_phase(namespace, "sleeper", "Running")
    assert descendants(os.getpid(), mentioning=cluster.workdir)  # the pod's processes run
    api.close()
    cluster.stop()
    assert descendants(os.getpid(), mentioning=cluster.workdir) == set()
    assert not cluster.workdir.exists()


def test_stack_releases_leases_and_leaves_no_process_or_directory() -> None:
    from tests.e2e.stack import BitfusionStack, missing_parts
    from tests.e2e.test_bitfusion_pods import workload

    if missing_parts():
        pytest.skip("the e2e stack needs " + ", ".join(missing_parts()))
    stack = BitfusionStack()
    handle = stack.start()
    try:
        namespace = handle.create_namespace_with_quota({f"requests.{QUOTA_RESOURCE}": 100})
        handle.api.create("Pod", workload("holder", 50, ["sleep", "300"]), namespace)
        handle.wait_for_pod_phase(namespace, "holder", "Running", timeout=60)
        handle.follow_log(namespace, "holder", container="train").wait_for_line("Locked 1 GPUs")
        assert len(stack.leases(namespace)) == 1
    finally:
        stack.stop(keep_files=True)
    assert descendants(os.getpid(), mentioning=stack.root) == set()
    assert stack.leases(namespace) == []
    stack.remove_files()
    assert not stack.root.exists()
