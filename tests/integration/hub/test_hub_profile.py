"""KubeSpawner offers GPU slices: the chosen slice lands on the notebook container as our webhook
expects it (resource keys in limits, the managed annotation, the argv in ``command``)."""

from __future__ import annotations

from typing import Any

import pytest

from bf_jupyter.hub import gpu_slice_profile, gpu_slice_profiles
from bf_jupyter.slice import GpuSlice, SliceError

kubespawner = pytest.importorskip("kubespawner")


async def spawn_manifest(user_options: dict[str, str], **profile: Any) -> Any:
    spawner = kubespawner.KubeSpawner(_mock=True)
    spawner.cmd = ["jupyterhub-singleuser"]
    spawner.profile_list = [
        {"display_name": "CPU only", "slug": "cpu", "default": True},
        gpu_slice_profile(**profile),
    ]
    spawner.user_options = user_options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    return await spawner.modify_pod_hook(spawner, pod) if spawner.modify_pod_hook else pod


async def test_listed_slice_sets_resources_annotation_and_command() -> None:
    pod = await spawn_manifest(
        {"profile": "bitfusion-gpu", "gpu": "1x50"}, slices=["1x25%", "1x50%"], image="k:1"
    )
    container = pod.spec.containers[0]
    assert container.resources.limits["bitfusion.io/gpu-amount"] == "1"
    assert container.resources.limits["bitfusion.io/gpu-percent"] == "50"
    assert pod.metadata.annotations["auto-management/bitfusion"] == "all"
    assert container.command[0] == "jupyterhub-singleuser"
    assert container.args is None
    assert container.image == "k:1"
    assert {"name": "BF_SLICE", "value": "1x50%"} in [
        {"name": e.name, "value": e.value} for e in container.env
    ]


async def test_typed_slice_with_filter_is_parsed_by_the_contract() -> None:
    pod = await spawn_manifest(
        {"profile": "bitfusion-gpu", "gpu--unlisted-choice": "2x8Gi device.name=V100"}
    )
    container = pod.spec.containers[0]
    assert container.resources.limits["bitfusion.io/gpu-memory"] == "8Gi"
    assert pod.metadata.annotations["bitfusion-client/filter"] == "device.name=V100"


async def test_default_profile_leaves_the_pod_alone() -> None:
    pod = await spawn_manifest({})
    container = pod.spec.containers[0]
    assert "auto-management/bitfusion" not in (pod.metadata.annotations or {})
    assert not (container.resources.limits or {})


async def test_configured_hook_still_runs() -> None:
    seen: list[str] = []

    def own_hook(spawner: Any, pod: Any) -> Any:
        seen.append(pod.metadata.name)
        return pod

    spawner = kubespawner.KubeSpawner(_mock=True)
    spawner.cmd = ["jupyterhub-singleuser"]
    spawner.modify_pod_hook = own_hook
    spawner.profile_list = [gpu_slice_profile(slices=["1"])]
    spawner.user_options = {"profile": "bitfusion-gpu"}
    await spawner.load_user_options()
    pod = await spawner.modify_pod_hook(spawner, await spawner.get_pod_manifest())
    assert seen == [pod.metadata.name]
    assert pod.spec.containers[0].command[0] == "jupyterhub-singleuser"


def test_bad_configuration_fails_at_hub_start_with_the_slice_error() -> None:
    with pytest.raises(SliceError, match="gpu-percent 150 is out of range"):
        gpu_slice_profile(slices=["1x150%"])
    with pytest.raises(SliceError, match="default 1x10% is not among the offered slices"):
        gpu_slice_profile(slices=["1x50%"], default="1x10%")


PER_BACKEND = {"hami": ["1x8Gi cores=30", "1x50%"], "nvidia": ["mig-1g.10gb", "1"]}


async def spawn_per_backend(user_options: dict[str, str]) -> Any:
    spawner = kubespawner.KubeSpawner(_mock=True)
    spawner.cmd = ["jupyterhub-singleuser"]
    spawner.profile_list = gpu_slice_profiles(
        PER_BACKEND, image="k:1", mig_profiles=["mig-1g.10gb", "mig-3g.40gb"]
    )
    spawner.user_options = user_options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    return await spawner.modify_pod_hook(spawner, pod)


def test_one_profile_per_backend_labels_each_choice_with_its_isolation() -> None:
    hami, nvidia = gpu_slice_profiles(PER_BACKEND)
    assert (hami["slug"], hami["display_name"]) == ("hami-gpu", "GPU notebook (HAMi)")
    assert nvidia["slug"] == "nvidia-gpu"
    choices = nvidia["profile_options"]["gpu"]["choices"]
    assert [c["display_name"] for c in choices.values()] == [
        "1 MIG device mig-1g.10gb · hardware partition",
        "1 GPU × 100 % · whole GPU",
    ]


async def test_a_hami_choice_puts_hamis_keys_scheduler_and_backend_on_the_pod() -> None:
    pod = await spawn_per_backend({"profile": "hami-gpu", "gpu": "1x8gi-cores-30"})
    container = pod.spec.containers[0]
    assert container.resources.limits == {
        "nvidia.com/gpu": "1", "nvidia.com/gpumem": "8192", "nvidia.com/gpucores": "30",
    }  # fmt: skip
    assert pod.spec.scheduler_name == "hami-scheduler"
    assert "auto-management/bitfusion" not in (pod.metadata.annotations or {})
    env = {e.name: e.value for e in container.env}
    assert (env["BF_SLICE"], env["BF_GPU_BACKEND"]) == ("1x8Gi cores=30", "hami")


async def test_a_typed_memory_slice_on_nvidia_takes_the_smallest_mig_profile() -> None:
    pod = await spawn_per_backend({"profile": "nvidia-gpu", "gpu--unlisted-choice": "1x20Gi"})
    assert pod.spec.containers[0].resources.limits == {"nvidia.com/mig-3g.40gb": "1"}


def test_a_slice_the_backend_cannot_honour_fails_at_hub_start_naming_the_alternative() -> None:
    with pytest.raises(SliceError, match="cannot be honoured by NVIDIA time-slicing: ask for"):
        gpu_slice_profiles({"nvidia-time-slicing": ["1x50%"]})


@pytest.mark.parametrize(
    "typed", ["2x8Gi device.name=V100", "1x8Gi cores=30", "mig-1g.10gb", "shared", "1xshared", "2"]
)
def test_the_free_form_field_lets_every_slice_form_through_to_the_contract(typed: str) -> None:
    import re

    (profile,) = gpu_slice_profiles({"hami": ["1"]})
    pattern = profile["profile_options"]["gpu"]["unlisted_choice"]["validation_regex"]
    assert re.match(pattern, typed)
    GpuSlice.parse(typed)  # and the contract reads it
