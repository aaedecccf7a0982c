"""JupyterLab on the kubernetes backend, against the e2e cluster (the test cluster with our cluster
side and bitfusion-sim, or ``$BF_E2E_KUBECONFIG``'s).

``bf-jupyter lab --backend kubernetes`` runs as the notebook service account that the shipped RBAC
binds in a namespace of this module's own (with a GPU quota of one GPU), through ``$KUBECONFIG``,
and offers the ``bitfusion-kubernetes`` kernelspec ``bf-k8s`` in that namespace. The browser and
page fixtures are those of ``tests/ui/conftest.py``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.contract import QUOTA_RESOURCE
from bf_jupyter.kernels.kernelspecs import KernelspecRequest, render_kernel_json
from tests.e2e.kernels.conftest import KERNEL_IMAGE_ENV
from tests.support import notebook_rbac
from tests.support.jupyter_process import Lab, disable_announcements, running_server

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle

KERNELSPEC = "bf-k8s"
QUOTA_UNITS = 100


@dataclass(frozen=True)
class ClusterLab:
    lab: Lab
    namespace: str


@pytest.fixture(scope="module")
def cluster_lab(
    cluster: ClusterHandle,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterLab]:
    namespace = cluster.create_namespace_with_quota(
        {f"requests.{QUOTA_RESOURCE}": QUOTA_UNITS}, prefix="lab"
    )
    try:
        if cluster.control_plane is not None:
            folder = tmp_path_factory.mktemp("rbac")
            kubeconfig = notebook_rbac.deploy(cluster.control_plane, namespace, folder).kubeconfig
        else:
            kubeconfig = cluster.kubeconfig
        with running_lab(tmp_path_factory.mktemp("lab"), namespace, kubeconfig) as lab:
            yield ClusterLab(lab, namespace)
    finally:
        if cluster.control_plane is not None:
            notebook_rbac.undeploy(cluster.control_plane, namespace)
        cluster.delete_namespace(namespace)


def _kernelspec(data: Path, namespace: str, config: Mapping[str, Any]) -> None:
    spec = render_kernel_json(KernelspecRequest(backend="kubernetes", namespace=namespace))
    spec["metadata"]["kernel_provisioner"]["config"].update(
        image=os.environ.get(KERNEL_IMAGE_ENV, "bf-jupyter/kernel:e2e"),
        server_id=f"ui-{namespace}",
        cpu_request="",
        memory_request="",
        launch_timeout=120,
        **config,
    )
    (data / "kernels" / KERNELSPEC).mkdir(parents=True)
    (data / "kernels" / KERNELSPEC / "kernel.json").write_text(json.dumps(spec))


@contextmanager
def running_lab(
    home: Path,
    namespace: str,
    kubeconfig: Path,
    *,
    kernelspec_config: Mapping[str, Any] | None = None,
    extra_options: Sequence[str] = (),
) -> Iterator[Lab]:
    """``bf-jupyter lab --backend kubernetes`` in ``home`` (its kernelspec's provisioner config
    extended by ``kernelspec_config``, its command line by ``extra_options``), stopped with
    SIGTERM at the end (it shuts its kernels down, so their pods go)."""
    config, data = home / "config", home / "data"
    data.mkdir(parents=True)
    disable_announcements(config)
    _kernelspec(data, namespace, kernelspec_config or {})
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env |= {
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "HOME": str(home),
        "KUBECONFIG": str(kubeconfig),
    }
    command = [str(Path(sys.executable).with_name("bf-jupyter")), "lab", "--backend", "kubernetes"]
    options = [
        f"--BitfusionExtension.namespace={namespace}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.log_level=INFO",
        *extra_options,
    ]
    with running_server(command, home=home, env=env, options=options) as lab:
        yield lab
