"""A kernel on half of this machine's GPU shows its GPU meter in the sidebar: a bar of its memory
against its share, the numbers, and the idle flag once its GPU has been idle long enough.

The GPU is a stand-in: ``nvidia-smi`` and ``pynvml`` (tests/support/nvml_on_kernels.py) report one
80 GiB GPU on which each kernel holds 6 GiB at 0 %; ``bitfusion-sim``'s local pool leases it and the
server meters the kernel's process tree, as on a GPU machine without Bitfusion.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.nvml_on_kernels import GPU_NAME, install_nvml_on_kernels
from tests.ui.sidebar.conftest import running_lab

if TYPE_CHECKING:
    from tests.support.jupyter_process import Lab

pytestmark = pytest.mark.ui
PANEL = ".jp-BfJupyter-panel"
TIMEOUT_MS = 60_000
IDLE_SETTINGS = {
    "gpu_meter_interval": 1.0,
    "gpu_idle_timeout": 3600.0,  # flagged at once (the warning starts as early), stopped in an hour
    "gpu_idle_warning": 3600.0,
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The sidebar's Lab on a local pool of the stand-in GPU instead of the virtual one."""
    home = tmp_path_factory.mktemp("meter-lab")

    def on_the_stand_in_gpu(env: dict[str, str]) -> None:
        env["BF_SIM_POOL"] = "local"
        install_nvml_on_kernels(home / "gpu-stand-in", env)

    with running_lab(home, env_changes=on_the_stand_in_gpu, settings=IDLE_SETTINGS) as lab:
        yield lab


def test_a_kernel_on_half_a_gpu_shows_its_memory_use_and_its_idle_flag(
    page: Any, lab: Lab, artifacts: Path
) -> None:
    # Given the sidebar on this machine's (stand-in) GPU
    page.goto(lab.page_url())
    page.locator('li[data-id="bf-jupyter-gpu-slices"]').click(timeout=TIMEOUT_MS)
    panel = page.locator(PANEL)
    panel.get_by_text(GPU_NAME).first.wait_for(timeout=TIMEOUT_MS)
    # When the user starts a console on 1 GPU × 50 %
    panel.get_by_label("Share of each GPU in percent").fill("50")
    panel.get_by_text("1x50% · costs 50 units").wait_for(timeout=TIMEOUT_MS)
    panel.get_by_role("button", name="New console").click()
    panel.locator('.jp-BfJupyter-startup[data-state="ready"]').wait_for(timeout=TIMEOUT_MS)
    # Then its row shows the meter: 6 GiB of its 39.8 GiB share (half of 81,559 MiB), at 0 %
    meter = panel.locator('.jp-BfJupyter-kernel .jp-BfJupyter-gpuMeter[data-reading="yes"]')
    meter.wait_for(timeout=TIMEOUT_MS)
    meter.get_by_text("6 GiB / 39.8 GiB · 0 %").wait_for(timeout=TIMEOUT_MS)
    bar = meter.get_by_role("meter", name="GPU memory of this kernel")
    assert bar.get_attribute("aria-valuenow") == "15"
    # and, its GPU being idle, the flag saying when it will be stopped
    meter.locator(".jp-BfJupyter-gpuIdleFlag").get_by_text(
        "will be stopped in", exact=False
    ).wait_for(timeout=TIMEOUT_MS)
    panel.screenshot(path=str(artifacts / "sidebar-gpu-meter.png"))
    # When the user stops it, the lease is returned
    panel.locator(".jp-BfJupyter-kernel").get_by_role("button", name="Stop").click()
    panel.get_by_text("No GPU kernels are running.").wait_for(timeout=TIMEOUT_MS)
