"""The slice of a launch: BF_SLICE from start_kernel's env, else the kernelspec's default_slice."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from bf_jupyter.kernels.local import BitfusionLocalProvisioner
from bf_jupyter.kernels.progress import PROGRESS
from bf_jupyter.kernels.sliced_kernel import KernelLaunchError
from bf_jupyter.slice import GpuSlice


def test_launch_env_chooses_the_slice() -> None:
    provisioner = BitfusionLocalProvisioner(kernel_id="k-env", default_slice="1x50%")
    assert provisioner.choose_slice({"BF_SLICE": "2x8Gi"}) == GpuSlice.parse("2x8Gi")
    assert provisioner.gpu_slice == GpuSlice.parse("2x8Gi")


def test_without_bf_slice_the_default_applies() -> None:
    provisioner = BitfusionLocalProvisioner(kernel_id="k-default", default_slice="1x25%")
    assert provisioner.choose_slice({"PATH": "/bin"}) == GpuSlice.parse("1x25%")


def test_a_bad_launch_slice_fails_with_the_contract_message_and_a_failed_event() -> None:
    provisioner = BitfusionLocalProvisioner(kernel_id="k-bad", default_slice="1")
    with pytest.raises(KernelLaunchError) as caught:
        provisioner.choose_slice({"BF_SLICE": "1x150%"})
    assert str(caught.value) == (
        "The GPU slice in BF_SLICE was refused: gpu-percent 150 is out of range: use 1–100."
    )
    (event,) = PROGRESS.history("k-bad")
    assert event.stage == "failed" and event.final


def test_a_bad_default_slice_is_refused_at_configuration() -> None:
    with pytest.raises(TraitError, match="default_slice: gpu-amount 0 is out of range"):
        BitfusionLocalProvisioner(kernel_id="k", default_slice="0")


def test_restart_flag_is_remembered_from_shutdown_requested() -> None:
    provisioner = BitfusionLocalProvisioner(kernel_id="k-restart")
    provisioner.note_shutdown_requested(True)
    assert provisioner.take_restart_flag(False) is True
    provisioner.clear_restart_flag()
    assert provisioner.take_restart_flag(False) is False


def test_one_launch_timeout_trait_with_a_default_per_kind_of_kernel() -> None:
    from traitlets.config import Config

    from bf_jupyter.kernels.kubernetes.provisioner import BitfusionKubernetesProvisioner
    from bf_jupyter.kernels.local import BitfusionLocalProvisioner

    assert BitfusionLocalProvisioner().launch_timeout == 120.0
    assert BitfusionKubernetesProvisioner().launch_timeout == 300.0  # a pod may pull its image
    config = Config()
    config.BitfusionKubernetesProvisioner.launch_timeout = 7.0
    assert BitfusionKubernetesProvisioner(config=config).launch_timeout == 7.0
