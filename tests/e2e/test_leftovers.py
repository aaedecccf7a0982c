"""The fixtures leave nothing behind: no process, no lease, no directory — even with pods running
(and holding a slice) when they stop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bf_jupyter.contract import QUOTA_RESOURCE
from tests.support.cluster_fixtures import real_kubeconfig

pytestmark = pytest.mark.skipif(
    real_kubeconfig() is not None, reason="checks the test cluster's own clean-up"
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


def test_stack_releases_leases_and_leaves_no_process_or_directory(tmp_path: Path) -> None:
    from tests.cluster.control_plane import ControlPlane
    from tests.e2e.test_bitfusion_pods import workload
    from tests.support.stack import BitfusionStack

    # a control plane of its own: stopping it is part of what is checked
    plane = ControlPlane(tmp_path / "control-plane").start()
    plane_pids = plane.pids()
    stack = BitfusionStack(plane)
    try:
        handle = stack.start()
        namespace = handle.create_namespace_with_quota({f"requests.{QUOTA_RESOURCE}": 100})
        handle.api.create("Pod", workload("holder", 50, ["sleep", "300"]), namespace)
        handle.wait_for_pod_phase(namespace, "holder", "Running", timeout=60)
        handle.follow_log(namespace, "holder", container="train").wait_for_line("Locked 1 GPUs")
        assert len(stack.leases(namespace)) == 1
    finally:
        stack.stop(keep_files=True)
        plane.stop()
    assert descendants(os.getpid(), mentioning=stack.root) == set()
    assert not any(_alive(pid) for pid in plane_pids)
    assert stack.leases(namespace) == []
    stack.remove_files()
    assert not stack.root.exists()
    assert not plane.root.exists()


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
