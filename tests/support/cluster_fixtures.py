"""The session's deployed test cluster, shared by every folder that needs it (a pytest plugin that
``tests/conftest.py`` registers, so ``tests/e2e`` and ``tests/ui/cluster`` use the same one):

- ``bitfusion_stack`` (session): the project's cluster side deployed with ``kubectl apply -k`` on the
  session's ``control_plane`` and one process-kubelet node (``tests.support.stack``); None when
  ``BF_E2E_KUBECONFIG`` names a real cluster's kubeconfig (nothing is started then).
- ``cluster`` (session): a ``ClusterHandle`` on that cluster, or on ``$BF_E2E_KUBECONFIG``'s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane
    from tests.support.cluster_handle import ClusterHandle
    from tests.support.stack import BitfusionStack

REAL_CLUSTER_ENV = "BF_E2E_KUBECONFIG"


def real_kubeconfig() -> Path | None:
    value = os.environ.get(REAL_CLUSTER_ENV, "").strip()
    return Path(value).expanduser() if value else None


@pytest.fixture(scope="session")
def bitfusion_stack(request: pytest.FixtureRequest) -> Iterator[BitfusionStack | None]:
    """Our cluster side on the session's control plane (None on a real cluster)."""
    if real_kubeconfig() is not None:
        yield None
        return
    from tests.support.stack import BitfusionStack

    control_plane: ControlPlane = request.getfixturevalue("control_plane")
    stack = BitfusionStack(control_plane)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def cluster(bitfusion_stack: BitfusionStack | None) -> Iterator[ClusterHandle]:
    """The cluster the e2e scenarios run on: ``$BF_E2E_KUBECONFIG``'s, else the test cluster."""
    if bitfusion_stack is not None:
        assert bitfusion_stack.handle is not None
        yield bitfusion_stack.handle
        return
    from bf_jupyter.kubeapi import KubeApi
    from tests.support.cluster_handle import ClusterHandle

    kubeconfig = real_kubeconfig()
    assert kubeconfig is not None
    api = KubeApi.connect(kubeconfig=str(kubeconfig))
    try:
        yield ClusterHandle(kubeconfig, api)
    finally:
        api.close()
