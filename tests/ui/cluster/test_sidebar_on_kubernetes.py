"""A user of JupyterLab on the kubernetes backend picks 1 × 50 % in the GPU slices sidebar, runs code
in a console whose kernel is a pod on the cluster, sees it listed with its pod, and stops it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.kernels.conftest import kernel_objects
from tests.ui.conftest import ARTIFACTS

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle
    from tests.ui.cluster.conftest import ClusterLab

pytestmark = pytest.mark.ui
PANEL = ".jp-BfJupyter-panel"
TIMEOUT_MS = 60_000


def test_a_console_on_half_a_gpu_runs_in_a_kernel_pod_and_stops(
    page: Any, cluster_lab: ClusterLab, cluster: ClusterHandle
) -> None:
    lab, namespace = cluster_lab.lab, cluster_lab.namespace
    # Given the sidebar on the kubernetes backend: the cluster's nodes and the namespace's quota
    page.goto(f"{lab.url}/lab?reset&token={lab.token}")
    page.locator('li[data-id="bf-jupyter-gpu-slices"]').click(timeout=TIMEOUT_MS)
    panel = page.locator(PANEL)
    panel.get_by_text("Cluster nodes").wait_for(timeout=TIMEOUT_MS)
    panel.get_by_text(re.compile(r"^\d+(\.\d+)? GPUs? on \d+ nodes?")).wait_for(timeout=TIMEOUT_MS)
    panel.get_by_text("1 of 1 GPUs remain (ResourceQuota gpu-quota).", exact=False).wait_for(
        timeout=TIMEOUT_MS
    )
    # When the user chooses 1 GPU × 50 % and opens a console on it
    panel.get_by_label("Share of each GPU in percent").fill("50")
    panel.get_by_text("1x50% · costs 50 units (0.5 GPU)").wait_for(timeout=TIMEOUT_MS)
    panel.get_by_role("button", name="New console").click()
    # Then the start-up goes through the pod's stages to ready
    startup = panel.locator('.jp-BfJupyter-startup[data-state="ready"]')
    startup.wait_for(timeout=TIMEOUT_MS)
    for stage in ("created", "scheduled", "started", "ready"):
        assert startup.locator(f'li[data-stage="{stage}"]').count() == 1, stage
    # and code runs in the kernel pod
    prompt = page.locator(".jp-CodeConsole-promptCell .jp-InputArea-editor")
    prompt.wait_for(timeout=TIMEOUT_MS)
    prompt.click()
    page.keyboard.type("print(6*7)")
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-CodeConsole .jp-OutputArea-output").filter(has_text="42").first.wait_for(
        timeout=TIMEOUT_MS
    )
    # and the kernel is listed with its slice and its pod, which exists on the cluster
    (pod,) = [
        o.split("/", 1)[1] for o in kernel_objects(cluster, namespace) if o.startswith("pod/")
    ]
    listed = panel.locator(".jp-BfJupyter-kernel").filter(has_text="1x50%")
    listed.filter(has_text=f"pod {pod}").wait_for(timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(ARTIFACTS / "sidebar-kubernetes.png"))
    # When the user stops it
    listed.get_by_role("button", name="Stop").click()
    # Then it is gone from the list, and its pod and Secret from the cluster
    panel.get_by_text("No GPU kernels are running.").wait_for(timeout=TIMEOUT_MS)
    assert kernel_objects(cluster, namespace) == []
