"""A real JupyterHub with KubeSpawner on the e2e cluster, for the browser: the example
configuration spawning into a namespace of this module's own whose GPU quota is 40 units (0.4 GPU),
as the hub's service account (``cluster/hub``). The browser and page fixtures are those of
``tests/ui/conftest.py``; the hub is ``tests/e2e/hub``'s."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from bf_jupyter.contract import QUOTA_RESOURCE
from tests.support import hub_rbac
from tests.support.hub_process import RunningHub

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle

pytest.importorskip("jupyterhub")
pytest.importorskip("kubespawner")

QUOTA_UNITS = 40


@pytest.fixture(scope="module")
def quota_hub(
    cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningHub]:
    if cluster.control_plane is None:
        pytest.skip("the hub runs on the test cluster (pods at 127.x addresses)")
    namespace = cluster.create_namespace_with_quota(
        {f"requests.{QUOTA_RESOURCE}": QUOTA_UNITS}, prefix="hub"
    )
    try:
        cluster.wait_for(
            "ResourceQuota",
            namespace,
            lambda _event, obj: bool((obj.get("status") or {}).get("hard")),
            describe="the quota's status",
        )
        identity = hub_rbac.deploy(
            cluster.control_plane, namespace, tmp_path_factory.mktemp("rbac")
        )
        hub = RunningHub.start(
            tmp_path_factory.mktemp("hub"), namespace=namespace, kubeconfig=identity.kubeconfig
        )
        try:
            yield hub
        finally:
            hub.stop()
    finally:
        hub_rbac.undeploy(cluster.control_plane, namespace)
        cluster.delete_namespace(namespace)
