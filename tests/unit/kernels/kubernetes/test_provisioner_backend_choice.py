"""Which GPU backend the Kubernetes provisioner renders a launch with (BF_GPU_BACKEND vs its trait)."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from bf_jupyter.contract import ENV_GPU_BACKEND
from bf_jupyter.kernels.kubernetes.provisioner import BitfusionKubernetesProvisioner
from bf_jupyter.kernels.sliced_kernel import KernelLaunchError


def provisioner(gpu_backend: str = "") -> BitfusionKubernetesProvisioner:
    return BitfusionKubernetesProvisioner(gpu_backend=gpu_backend, namespace="notebooks")


@pytest.mark.parametrize(
    ("configured", "env", "chosen"),
    [
        ("", {}, "bitfusion"),  # today's behaviour for kernelspecs that name no backend
        ("", {ENV_GPU_BACKEND: "hami"}, "hami"),  # the server's choice from the picker
        ("nvidia", {}, "nvidia"),  # the kernelspec's own
        ("nvidia", {ENV_GPU_BACKEND: "nvidia"}, "nvidia"),
    ],
)
def test_the_launch_backend_is_the_kernelspecs_else_the_launchs_else_bitfusion(
    configured: str, env: dict[str, str], chosen: str
) -> None:
    kernel = provisioner(configured)
    assert kernel.choose_backend(env) == chosen
    kernel.launch_backend = chosen
    assert kernel.pod_settings().gpu_backend.name == chosen


def test_a_launch_contradicting_the_kernelspecs_backend_fails_naming_both() -> None:
    with pytest.raises(
        KernelLaunchError,
        match="BF_GPU_BACKEND hami was refused: this kernelspec runs on the nvidia backend only",
    ):
        provisioner("nvidia").choose_backend({ENV_GPU_BACKEND: "hami"})


def test_an_unknown_launch_backend_fails_with_the_known_ones() -> None:
    with pytest.raises(
        KernelLaunchError, match=r"backend .cuda. is not known: use one of bitfusion"
    ):
        provisioner().choose_backend({ENV_GPU_BACKEND: "cuda"})


def test_an_unknown_configured_backend_is_a_trait_error() -> None:
    with pytest.raises(TraitError, match="backend 'cuda' is not known"):
        provisioner("cuda")


def test_a_reattached_kernel_keeps_its_launch_backend() -> None:
    kernel = provisioner()
    kernel.launch_backend = "hami"
    again = provisioner()
    again.restore_remote(kernel.remote_info())
    assert again.pod_settings().gpu_backend.name == "hami"
