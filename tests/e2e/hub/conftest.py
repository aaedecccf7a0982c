"""A real JupyterHub with KubeSpawner on the e2e cluster (``tests.support.hub_process``), spawning into the test's
namespace as the hub's service account with the shipped RBAC (``tests.support.hub_rbac``).

- ``hub_identity``: ``cluster/hub`` applied in the test's namespace; a kubeconfig for the account.
- ``start_hub(extra_config="")``: a started hub (stopped, with every server it runs, at the end).
- ``hub``: ``start_hub()`` with the example configuration as it is.

The test cluster only: the hub reaches pods at their 127.x addresses, and the RBAC check reads the
apiserver's audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import hub_rbac
from tests.support.hub_process import RunningHub

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle

pytest.importorskip("jupyterhub")
pytest.importorskip("kubespawner")

StartHub = Callable[..., RunningHub]


@pytest.fixture
def hub_identity(
    cluster: ClusterHandle, namespace: str, tmp_path: Path
) -> Iterator[hub_rbac.HubIdentity]:
    if cluster.control_plane is None:
        pytest.skip("the hub tests run on the test cluster (pods at 127.x addresses, audit log)")
    identity = hub_rbac.deploy(cluster.control_plane, namespace, tmp_path)
    yield identity
    hub_rbac.undeploy(cluster.control_plane, namespace)


@pytest.fixture
def start_hub(hub_identity: hub_rbac.HubIdentity, tmp_path: Path) -> Iterator[StartHub]:
    started: list[RunningHub] = []

    def start(extra_config: str = "") -> RunningHub:
        hub = RunningHub.start(
            tmp_path / f"hub-{len(started)}",
            namespace=hub_identity.namespace,
            kubeconfig=hub_identity.kubeconfig,
            extra_config=extra_config,
        )
        started.append(hub)
        return hub

    yield start
    for hub in reversed(started):
        hub.stop()


@pytest.fixture
def hub(start_hub: StartHub) -> RunningHub:
    return start_hub()
