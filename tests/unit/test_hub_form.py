"""The spawn form says what fits: GPU slice choices that the namespace quota or the nodes cannot
hold are marked unavailable with the reason, never the default, and refuse a spawn; the GPU
profile shows the remaining quota."""

from __future__ import annotations

from typing import Any

import pytest

from bf_jupyter.hub import SpawnRefused, gpu_slice_profile
from bf_jupyter.hub_form import FitContext, mark_fit

CPU = {"display_name": "CPU only", "slug": "cpu", "default": True}


def quota(hard: int, used: int, name: str = "gpu-quota") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "hard": {"requests.bitfusion.io/gpu": str(hard)},
            "used": {"requests.bitfusion.io/gpu": str(used)},
        },
    }


def node(name: str, units: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"allocatable": {"bitfusion.io/gpu": str(units)}}}


def gpu_choices(profiles: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return dict(profiles[1]["profile_options"]["gpu"]["choices"])


def test_a_slice_over_the_remaining_quota_is_unavailable_with_the_reason() -> None:
    # given 100 units of quota of which 60 are used, and a node with 2 GPUs
    context = FitContext("team-a", [quota(100, 60)], [node("n1", 200)])
    profiles = [CPU, gpu_slice_profile(slices=["1x25%", "1x50%", "1"], default="1x50%")]

    # when the form is marked
    marked = mark_fit(profiles, context)

    # then 1x25% fits; 1x50% and 1 GPU do not, and say why
    choices = gpu_choices(marked)
    assert "unavailable" not in choices["1x25"]
    reason = choices["1x50"]["unavailable"]
    assert "costs 50 bitfusion.io/gpu units but only 40 of 100 remain" in reason
    assert "ResourceQuota gpu-quota" in reason
    assert choices["1x50"]["display_name"].endswith(f"— unavailable: {reason}")
    assert "unavailable" in choices["1x100"]
    # the default moved to a choice that fits
    assert choices["1x25"]["default"] and not choices["1x50"]["default"]
    # the profile says what remains
    assert marked[1]["description"].endswith(
        "Quota: 0.4 of 1 GPUs remain (ResourceQuota gpu-quota)."
    )
    # the configured list is untouched
    assert "unavailable" not in gpu_choices(profiles)["1x50"]


def test_a_slice_larger_than_any_node_is_unavailable() -> None:
    context = FitContext("team-a", [], [node(f"n{i}", 100) for i in range(3)])
    marked = mark_fit([CPU, gpu_slice_profile(slices=["1", "2"])], context)
    choices = gpu_choices(marked)
    assert "unavailable" not in choices["1x100"]
    assert "no node has more than 100" in choices["2x100"]["unavailable"]
    assert marked[1]["description"].endswith("No GPU quota here.")


def test_choosing_an_unavailable_slice_anyway_refuses_the_spawn_with_the_reason() -> None:
    context = FitContext("team-a", [quota(100, 100)], [node("n1", 200)])
    marked = mark_fit([gpu_slice_profile(slices=["1x25%"])], context)
    override = marked[0]["profile_options"]["gpu"]["choices"]["1x25"]["kubespawner_override"]
    with pytest.raises(
        SpawnRefused, match=r"does not fit: 1 GPU × 25 % costs 25 bitfusion\.io/gpu units"
    ):
        override["bf_jupyter_refusal"](object())


def test_other_profiles_pass_through_unchanged() -> None:
    assert mark_fit([CPU], FitContext("team-a", [quota(1, 1)], [])) == [CPU]


def test_a_slice_that_cannot_be_priced_is_unavailable_with_the_slice_error() -> None:
    # no node says how much memory its GPUs have, so 8Gi cannot be turned into quota units
    context = FitContext("team-a", [quota(100, 0)], [node("n1", 200)])
    marked = mark_fit([gpu_slice_profile(slices=["1x50%", "1x8Gi"])], context)
    choices = marked[0]["profile_options"]["gpu"]["choices"]
    assert "unavailable" not in choices["1x50"]
    assert "without the per-GPU memory" in choices["1x8gi"]["unavailable"]
