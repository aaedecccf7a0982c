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
from typing import TYPE_CHECKING

import pytest

from tests.e2e.cluster_handle import ClusterHandle

if TYPE_CHECKING:
    from tests.e2e.stack import BitfusionStack

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


# ----- the project's cluster side: on the emulator, or on a real cluster -------------------------

TOKEN_NAMESPACE_ENV = "BF_E2E_TOKEN_NAMESPACE"


@pytest.fixture(scope="session")
def bitfusion_stack() -> Iterator[BitfusionStack | None]:
    """The emulated cluster with our webhook, device plugin and bitfusion-sim (None on a real cluster)."""
    if real_kubeconfig() is not None:
        yield None
        return
    from tests.e2e.stack import BitfusionStack, missing_parts

    missing = missing_parts()
    if missing:
        pytest.skip("the e2e stack needs " + ", ".join(missing) + ", not in this checkout yet")
    stack = BitfusionStack()
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def cluster(bitfusion_stack: BitfusionStack | None) -> Iterator[ClusterHandle]:
    """The cluster the e2e scenarios run on: ``$BF_E2E_KUBECONFIG``'s, else the emulated stack's."""
    if bitfusion_stack is not None:
        assert bitfusion_stack.handle is not None
        yield bitfusion_stack.handle
        return
    from bf_jupyter.kubeapi import KubeApi

    kubeconfig = real_kubeconfig()
    assert kubeconfig is not None
    api = KubeApi.connect(kubeconfig=str(kubeconfig))
    handle = ClusterHandle(kubeconfig, api)
    source = os.environ.get(TOKEN_NAMESPACE_ENV, "bf-system")

    def copy_token_secret(namespace: str) -> None:
        secret = api.get("Secret", "bitfusion-secret", source)
        api.create(
            "Secret",
            {"metadata": {"name": "bitfusion-secret"}, "data": secret.get("data") or {}},
            namespace,
        )

    handle.namespace_setup.append(copy_token_secret)
    try:
        yield handle
    finally:
        api.close()


@pytest.fixture
def namespace(cluster: ClusterHandle) -> Iterator[str]:
    """A fresh namespace on ``cluster`` holding the Bitfusion token Secret; deleted afterwards."""
    name = cluster.create_namespace("e2e")
    try:
        yield name
    finally:
        cluster.delete_namespace(name)
