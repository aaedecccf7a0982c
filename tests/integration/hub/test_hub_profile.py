"""KubeSpawner offers GPU slices: the chosen slice lands on the notebook container as our webhook
expects it (resource keys in limits, the managed annotation, the argv in ``command``)."""

from __future__ import annotations

from typing import Any

import pytest

from bf_jupyter.hub import gpu_slice_profile
from bf_jupyter.slice import SliceError

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
