"""A user of JupyterLab on a DRA cluster picks 1 × 8Gi in the GPU slices sidebar: the pool shows
the devices a DRA driver publishes in ResourceSlices, the kernel runs in a pod whose claim the real
kube-scheduler allocated, and stopping it leaves no pod, template or claim. Screenshot:
``artifacts/ui/sidebar-dra.png``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.kernels.conftest import KERNEL_SELECTOR
from tests.support import notebook_rbac
from tests.ui.cluster.conftest import ClusterLab, running_lab
from tests.ui.conftest import ARTIFACTS

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle
    from tests.support.stack import BitfusionStack

pytestmark = pytest.mark.ui
PANEL = ".jp-BfJupyter-panel"
TIMEOUT_MS = 60_000
QUOTA_KEY = "gpu.nvidia.com.deviceclass.resource.k8s.io/devices"


@pytest.fixture(scope="module")
def dra_lab(
    cluster: ClusterHandle,
    bitfusion_stack: BitfusionStack | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterLab]:
    """JupyterLab offering the dra backend, as the notebook service account with the shipped RBAC
    (DRA's included), in a namespace whose quota is one device, beside ``dra-node``."""
    if bitfusion_stack is None or bitfusion_stack.proxy is None:
        pytest.skip("the DRA node is a process-kubelet of the test cluster")
    from tests.support.dra_cluster import dra_node, grant_dra_rbac, revoke_dra_rbac

    plane = bitfusion_stack.control_plane
    namespace = cluster.create_namespace_with_quota({QUOTA_KEY: 1}, prefix="lab-dra")
    try:
        with dra_node(bitfusion_stack, tmp_path_factory.mktemp("dra-node") / "node"):
            identity = notebook_rbac.deploy(plane, namespace, tmp_path_factory.mktemp("rbac"))
            grant_dra_rbac(plane, namespace)
            with running_lab(
                tmp_path_factory.mktemp("lab"),
                namespace,
                identity.kubeconfig,
                kernelspec_config={"gpu_backend": "dra"},
                extra_options=["--BitfusionExtension.gpu_backends=dra"],
            ) as lab:
                yield ClusterLab(lab, namespace)
    finally:
        notebook_rbac.undeploy(plane, namespace)
        revoke_dra_rbac(plane, namespace)
        cluster.delete_namespace(namespace)


def dra_objects(cluster: ClusterHandle, namespace: str) -> list[str]:
    return sorted(
        f"{kind.lower()}/{obj['metadata']['name']}"
        for kind in ("Pod", "ResourceClaimTemplate", "ResourceClaim")
        for obj in cluster.api.list(kind, namespace, label_selector=KERNEL_SELECTOR)
    )


def test_a_console_on_8gi_of_a_dra_gpu_runs_and_stops(
    page: Any, dra_lab: ClusterLab, cluster: ClusterHandle
) -> None:
    lab, namespace = dra_lab.lab, dra_lab.namespace
    # Given the sidebar on a DRA cluster: the driver's devices in the pool
    page.goto(f"{lab.url}/lab?reset&token={lab.token}")
    page.locator('li[data-id="bf-jupyter-gpu-slices"]').click(timeout=TIMEOUT_MS)
    panel = page.locator(PANEL)
    panel.locator(".jp-BfJupyter-backend").filter(has_text="dra").first.wait_for(timeout=TIMEOUT_MS)
    # When the user chooses 8 GiB of one GPU and opens a console on it
    panel.get_by_role("radio", name="Memory").check()
    panel.get_by_label("Memory per GPU").fill("8")
    panel.get_by_text("1x8Gi", exact=False).first.wait_for(timeout=TIMEOUT_MS)
    panel.get_by_role("button", name="New console").click()
    # Then the start-up goes through the pod's stages to ready
    startup = panel.locator('.jp-BfJupyter-startup[data-state="ready"]')
    startup.wait_for(timeout=TIMEOUT_MS)
    # and code runs in the kernel pod, on the device the driver prepared
    prompt = page.locator(".jp-CodeConsole-promptCell .jp-InputArea-editor")
    prompt.wait_for(timeout=TIMEOUT_MS)
    prompt.click()
    page.keyboard.type("import os; print(os.environ['GPU_SHARING_STRATEGY'], 6*7)")
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-CodeConsole .jp-OutputArea-output").filter(has_text="MPS 42").first.wait_for(
        timeout=TIMEOUT_MS
    )
    # and the kernel is listed with its slice; its pod holds an allocated claim
    listed = panel.locator(".jp-BfJupyter-kernel").filter(has_text="1x8Gi")
    listed.wait_for(timeout=TIMEOUT_MS)
    (claim,) = cluster.api.list("ResourceClaim", namespace, label_selector=KERNEL_SELECTOR)
    assert claim["status"]["allocation"]["devices"]["results"]
    page.locator(".jp-BfJupyter-backend").first.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(ARTIFACTS / "sidebar-dra.png"))
    # When the user stops it
    listed.get_by_role("button", name="Stop").click()
    # Then it is gone from the list, and its pod, template and claim from the cluster
    panel.get_by_text("No GPU kernels are running.").wait_for(timeout=TIMEOUT_MS)
    assert dra_objects(cluster, namespace) == []
