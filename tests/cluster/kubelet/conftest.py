"""Fixtures of the process-kubelet's tests: one node of its own on the session's control plane,
for this package's tests only (its Node is deleted afterwards, so later tests see only theirs).

Its pods select it with ``nodeSelector`` (``kubernetes.io/hostname``) and tolerate its taint, so
kube-scheduler binds them there and nothing else lands on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from bf_jupyter.kubeapi import KubeApi
from tests.cluster.kubelet import ProcessKubelet
from tests.cluster.kubelet.pod_specs import DRA_GPUS, NODE, TAINT
from tests.support.cluster_handle import ClusterHandle

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane


@pytest.fixture(scope="package")
def kubelet(control_plane: ControlPlane) -> Iterator[ProcessKubelet]:
    node = ProcessKubelet(
        control_plane, NODE, device_plugins=True, taints=[TAINT], dra_gpus=DRA_GPUS
    ).start()
    try:
        yield node
    finally:
        node.stop()
        control_plane.kubectl("delete", "node", NODE, "--ignore-not-found", "--wait=false")


@pytest.fixture(scope="package")
def cluster(control_plane: ControlPlane, kubelet: ProcessKubelet) -> Iterator[ClusterHandle]:
    """A handle on the control plane as its administrator, with the kubelet's node up."""
    api = KubeApi.connect(kubeconfig=str(control_plane.kubeconfig))
    try:
        yield ClusterHandle(control_plane.kubeconfig, api)
    finally:
        api.close()
