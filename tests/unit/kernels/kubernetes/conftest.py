"""Fixtures for the kernel pod builder (the Kubernetes leaf of the provisioners)."""

from __future__ import annotations

import pytest

from bf_jupyter.kernels.kubernetes.pod_builder import (
    KernelPodBuilder,
    KernelPodSettings,
    PodLaunch,
)
from bf_jupyter.kernels.remote_start import kernel_ports
from bf_jupyter.slice import GpuSlice


@pytest.fixture
def settings() -> KernelPodSettings:
    return KernelPodSettings(namespace="notebooks", image="registry.example/kernel:1.0")


@pytest.fixture
def launch() -> PodLaunch:
    return PodLaunch(
        kernel_id="0b5e7f9a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        generation=1,
        gpu_slice=GpuSlice.parse("1x50%"),
        user="ada",
        server_id="jupyter-ada",
        command=["python", "-m", "bf_jupyter.kernels.launcher"],
        ports=kernel_ports(52700, 1),
        signature_scheme="hmac-sha256",
        environment={"KERNEL_USERNAME": "ada", "JPY_SESSION_NAME": "train.ipynb"},
    )


@pytest.fixture
def builder(settings: KernelPodSettings) -> KernelPodBuilder:
    return KernelPodBuilder(settings)
