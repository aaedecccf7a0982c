"""Fixtures for end-to-end tests.

- ``cluster`` (session): a ``ClusterHandle`` on the emulated cluster with the project's real
  webhook, device plugin and ``bitfusion-sim`` wired in — or, when ``BF_E2E_KUBECONFIG`` names a
  kubeconfig, on that real cluster instead (the emulator is not started then).
- ``namespace`` (per test): a fresh namespace on ``cluster``, deleted (and awaited) afterwards.
- ``emulator`` (session) / ``emulator_namespace``: a bare emulated cluster (no webhooks) for the
  tests of the emulator itself; they are skipped against a real cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster_handle import ClusterHandle

REAL_CLUSTER_ENV = "BF_E2E_KUBECONFIG"
NODE_GPU_UNITS = "200"


def real_kubeconfig() -> Path | None:
    value = os.environ.get(REAL_CLUSTER_ENV, "").strip()
    return Path(value).expanduser() if value else None


@pytest.fixture(scope="session")
def emulator() -> Iterator[ClusterHandle]:
    """A bare emulated cluster: one node with ``bitfusion.io/gpu`` capacity, no webhooks."""
    if real_kubeconfig() is not None:
        pytest.skip(
            f"tests of the emulator itself do not run against a real cluster (${REAL_CLUSTER_ENV} is set)"
        )
    from bf_jupyter.kubeapi import KubeApi
    from tests.emulator.cluster import EmulatedCluster, NodeSpec

    node = NodeSpec(
        capacity={"cpu": "8", "memory": "32Gi", "pods": "110", "bitfusion.io/gpu": NODE_GPU_UNITS}
    )
    cluster = EmulatedCluster(nodes=[node]).start()
    api = KubeApi.connect(kubeconfig=str(cluster.kubeconfig))
    try:
        yield ClusterHandle(cluster.kubeconfig, api, cluster)
    finally:
        api.close()
        cluster.stop()


@pytest.fixture
def emulator_namespace(emulator: ClusterHandle) -> Iterator[str]:
    name = emulator.create_namespace("emu")
    try:
        yield name
    finally:
        emulator.delete_namespace(name)
