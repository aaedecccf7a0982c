"""A jupyter-server with bf-jupyter on the kubernetes backend, on the e2e cluster.

The server runs in this process (pytest-jupyter) with ``backend=kubernetes`` and the test's
namespace. On the test cluster it authenticates as the notebook service account that the
shipped RBAC (``cluster/notebook``, ``notebook_rbac.deploy``) binds in that namespace, through
``$KUBECONFIG`` as a server outside a pod does, and every call it makes is in the apiserver's audit
log with RBAC's verdict. On a real cluster (``BF_E2E_KUBECONFIG``) it uses that kubeconfig and the RBAC checks are
skipped. Kernels use the ``bitfusion-kubernetes`` kernelspec ``bf-k8s``, on the same credentials.

pytest-asyncio runs ``async def`` tests on a loop of its own while the server runs on
pytest-jupyter's, so tests here are plain functions that ``run(...)`` coroutines on the server's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403

from bf_jupyter.kernels.kernelspecs import KernelspecRequest, render_kernel_json
from tests.e2e.kernels.conftest import KERNEL_IMAGE_ENV
from tests.support import notebook_rbac, server_api

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle

# fixtures for this directory (after pytest-jupyter's, to override its jp_server_config)
run = server_api.run
api = server_api.api
jp_server_config = server_api.jp_server_config

KERNELSPEC = "bf-k8s"
MISSING_IMAGE_KERNELSPEC = "bf-k8s-missing-image"
MISSING_IMAGE = "registry.invalid/bf-kernel:missing"
SERVER_POD = "jupyter-e2e"  # the server's pod name as the provisioner is told (none exists here)


@dataclass(frozen=True)
class Server:
    """What a test knows about the server under test."""

    namespace: str
    user: str | None  # the service account's user name (None on a real cluster)
    kubeconfig: Path


@pytest.fixture
def notebook_identity(
    cluster: ClusterHandle, namespace: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Server]:
    """The shipped RBAC in the test's namespace, and ``$KUBECONFIG`` for its service account."""
    if cluster.control_plane is None:
        server = Server(namespace, None, cluster.kubeconfig)
    else:
        identity = notebook_rbac.deploy(cluster.control_plane, namespace, tmp_path)
        server = Server(namespace, identity.user, identity.kubeconfig)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig))
    yield server
    _forget_provisioner_connection()
    if cluster.control_plane is not None:
        notebook_rbac.undeploy(cluster.control_plane, namespace)


def _forget_provisioner_connection() -> None:
    """The provisioner keeps one API connection per (kubeconfig, context) for the process; the
    next test's service account must not reuse this one's."""
    from bf_jupyter.kernels.kubernetes import provisioner

    connection = provisioner._APIS.pop(("", ""), None)
    if connection is not None:
        connection.close()


@pytest.fixture
def extension_config(notebook_identity: Server) -> dict[str, Any]:
    """``c.BitfusionExtension`` settings; tests may change them before the server starts."""
    return {
        "backend": "kubernetes",
        "namespace": notebook_identity.namespace,
        "cache_ttl": 0.0,  # every request reads the cluster afresh: tests see changes at once
        "launch_timeout": 120.0,
    }


@pytest.fixture(autouse=True)
def kubernetes_kernelspecs(jp_environ: None, jp_data_dir: Path, notebook_identity: Server) -> None:
    """``bf-k8s`` (bitfusion-kubernetes, in the test namespace) and the same with an image that
    cannot be pulled. Both take their credentials from ``$KUBECONFIG``, as the server does."""
    for name, image in (
        (KERNELSPEC, os.environ.get(KERNEL_IMAGE_ENV, "bf-jupyter/kernel:e2e")),
        (MISSING_IMAGE_KERNELSPEC, MISSING_IMAGE),
    ):
        spec = render_kernel_json(
            KernelspecRequest(backend="kubernetes", namespace=notebook_identity.namespace)
        )
        spec["display_name"] = name
        spec["metadata"]["kernel_provisioner"]["config"].update(
            image=image,
            server_id=f"e2e-{notebook_identity.namespace}",
            server_pod_name=SERVER_POD,
            reap_orphans=True,  # as in a pod: the first launch looks for what a crash left
            cpu_request="",
            memory_request="",
            launch_timeout=3600,  # no test waits for it: failures must come from the cluster
        )
        directory = jp_data_dir / "kernels" / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "kernel.json").write_text(json.dumps(spec))
    os.environ.pop("BF_SLICE", None)


def sse_events(body: bytes) -> list[dict[str, Any]]:
    """The events of a server-sent event stream, in order (keep-alive comments skipped)."""
    events = []
    for frame in body.decode().split("\n\n"):
        data = [line[len("data: ") :] for line in frame.splitlines() if line.startswith("data: ")]
        if data:
            events.append(json.loads("".join(data)))
    return events


@pytest.fixture
def follow_events(api: Callable[..., Any]) -> Callable[[str], list[dict[str, Any]]]:
    """``follow_events(kernel_id)``: ``GET kernels/{id}/events`` read to its end (``ready`` or
    ``failed``), as a browser tab reads it."""

    def follow(kernel_id: str) -> list[dict[str, Any]]:
        response = api("GET", f"kernels/{kernel_id}/events", request_timeout=300)
        assert response.code == 200, response.body
        assert response.headers["Content-Type"] == "text/event-stream"
        return sse_events(response.body)

    return follow
