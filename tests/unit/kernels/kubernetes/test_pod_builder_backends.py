"""The kernel pod on other GPU backends: the backend's rendering, nothing of Bitfusion's."""

from __future__ import annotations

import dataclasses

import pytest

from bf_jupyter.backends import Offer, SliceRefused, get_backend
from bf_jupyter.kernels.kubernetes.pod_builder import KernelPodBuilder, KernelPodSettings, PodLaunch
from bf_jupyter.slice import GpuSlice


def test_hami_kernel_pod_carries_hamis_keys_scheduler_and_annotations(
    settings: KernelPodSettings, launch: PodLaunch
) -> None:
    # Given a kernel on a HAMi slice
    hami = dataclasses.replace(settings, gpu_backend=get_backend("hami"))
    on_slice = dataclasses.replace(
        launch, gpu_slice=GpuSlice.parse("1x8Gi cores=30 device.name=A100")
    )
    # When
    pod = KernelPodBuilder(hami).pod(on_slice)
    # Then
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert {k: v for k, v in limits.items() if k.startswith("nvidia.com/")} == {
        "nvidia.com/gpu": "1",
        "nvidia.com/gpumem": "8192",
        "nvidia.com/gpucores": "30",
    }
    assert not any(k.startswith("bitfusion.io/") for k in limits)
    assert pod["spec"]["schedulerName"] == "hami-scheduler"
    annotations = pod["metadata"]["annotations"]
    assert annotations["nvidia.com/use-gputype"] == "A100"
    assert "auto-management/bitfusion" not in annotations


def test_nvidia_kernel_pod_takes_the_mig_profile_offered(
    settings: KernelPodSettings, launch: PodLaunch
) -> None:
    nvidia = dataclasses.replace(
        settings, gpu_backend=get_backend("nvidia"), gpu_offer=Offer(mig_profiles=("mig-1g.10gb",))
    )
    on_slice = dataclasses.replace(launch, gpu_slice=GpuSlice.parse("1x10Gi"))
    limits = KernelPodBuilder(nvidia).pod(on_slice)["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/mig-1g.10gb"] == "1"


def test_a_slice_the_backend_cannot_honour_builds_no_pod(
    settings: KernelPodSettings, launch: PodLaunch
) -> None:
    shared = dataclasses.replace(settings, gpu_backend=get_backend("nvidia-time-slicing"))
    with pytest.raises(SliceRefused, match="ask for"):
        KernelPodBuilder(shared).pod(dataclasses.replace(launch, gpu_slice=GpuSlice.parse("1x50%")))


def test_dra_kernel_pod_claims_a_template_named_and_labelled_as_the_pod(
    settings: KernelPodSettings, launch: PodLaunch
) -> None:
    # Given a kernel on a DRA slice
    dra = dataclasses.replace(settings, gpu_backend=get_backend("dra"))
    builder = KernelPodBuilder(dra)
    # When
    pod = builder.pod(launch)
    (template,) = builder.slice_objects(launch)
    # Then the pod claims the template, which is called and labelled as the pod
    name = pod["metadata"]["name"]
    assert pod["spec"]["resourceClaims"] == [{"name": "gpu", "resourceClaimTemplateName": name}]
    container = pod["spec"]["containers"][0]
    assert container["resources"]["claims"] == [{"name": "gpu"}]
    assert not any("/" in k for k in container["resources"]["limits"])
    assert template["kind"] == "ResourceClaimTemplate"
    assert template["metadata"]["name"] == name
    assert template["metadata"]["namespace"] == "notebooks"
    assert template["metadata"]["labels"] == pod["metadata"]["labels"]
    assert template["spec"]["metadata"]["labels"] == pod["metadata"]["labels"]
    assert "auto-management/bitfusion" not in pod["metadata"]["annotations"]


def test_bitfusion_kernel_pod_has_no_extra_objects(
    builder: KernelPodBuilder, launch: PodLaunch
) -> None:
    assert builder.slice_objects(launch) == []
