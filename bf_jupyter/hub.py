"""JupyterHub: offer GPU slices at spawn time through KubeSpawner's ``profile_list``.

In ``jupyterhub_config.py``::

    from bf_jupyter.hub import gpu_slice_profile
    c.KubeSpawner.profile_list = [
        {"display_name": "CPU only", "slug": "cpu", "default": True},
        gpu_slice_profile(slices=["1x25%", "1x50%", "1"], image="registry.local/bf-kernel:1.0"),
    ]

The user picks a slice from a list (or types one, e.g. ``2x8Gi``); the profile writes the slice's
resource keys into the notebook container's limits and asks our webhook to manage the pod. KubeSpawner
puts the server command in ``args`` (``command`` empty), and the webhook only wraps ``command``, so the
profile also installs a ``modify_pod_hook`` that moves the argv into ``command`` (composed with any
hook you configured yourself).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from bf_jupyter.contract import ANNOTATION_FILTER, ANNOTATION_MANAGEMENT
from bf_jupyter.slice import TEXT_FORMS, GpuSlice, SliceError

__all__ = ["SLICE_OPTION", "gpu_slice_profile", "slice_overrides"]

SLICE_OPTION = "gpu"
DEFAULT_COMMAND = ("jupyterhub-singleuser",)
# A coarse shape check for the free-form field; GpuSlice.parse gives the precise error.
_UNLISTED_PATTERN = r"^\s*\d+\s*([x×X*]\s*\S+)?(\s+\S+=\S+)*\s*$"

Override = dict[str, Any]
PodHook = Callable[[Any, Any], Any]


def slice_overrides(gpu_slice: GpuSlice, *, command: Sequence[str] = DEFAULT_COMMAND) -> Override:
    """KubeSpawner overrides that put ``gpu_slice`` on the notebook container."""
    annotations = {ANNOTATION_MANAGEMENT: "all"}
    if gpu_slice.filters:
        annotations[ANNOTATION_FILTER] = gpu_slice.filter_annotation()
    return {
        "extra_resource_limits": gpu_slice.to_resources(),
        "extra_annotations": annotations,
        "environment": {"BF_SLICE": gpu_slice.to_text()},
        "modify_pod_hook": _command_hook_factory(tuple(command)),
    }


def gpu_slice_profile(
    *,
    slices: Sequence[str] = ("1x25%", "1x50%", "1"),
    default: str | None = None,
    display_name: str = "GPU notebook (Bitfusion)",
    description: str = "A notebook server on a slice of a network-attached GPU.",
    slug: str = "bitfusion-gpu",
    image: str | None = None,
    command: Sequence[str] = DEFAULT_COMMAND,
    allow_custom: bool = True,
    extra_override: Override | None = None,
) -> dict[str, Any]:
    """One ``profile_list`` entry offering ``slices`` (text forms; validated now, so a typo in
    ``jupyterhub_config.py`` fails at hub start with the slice error) and, when ``allow_custom``,
    a free-form slice field. Raises ``SliceError`` for a bad slice or a ``default`` not in ``slices``.
    """
    parsed = [GpuSlice.parse(text) for text in slices]
    if not parsed:
        raise SliceError("slices", "[]", "is empty", "offer at least one slice, e.g. ['1x50%']")
    chosen = GpuSlice.parse(default) if default is not None else parsed[0]
    if chosen not in parsed:
        raise SliceError(
            "default", str(default), "is not among the offered slices", ", ".join(map(str, parsed))
        )
    choices = {
        _choice_key(s): {
            "display_name": s.describe(),
            "default": s == chosen,
            "kubespawner_override": slice_overrides(s, command=command),
        }
        for s in parsed
    }
    option: dict[str, Any] = {"display_name": "GPU slice", "choices": choices}
    if allow_custom:
        option["unlisted_choice"] = {
            "enabled": True,
            "display_name": "GPU slice",
            "display_name_in_choices": "Other slice…",
            "validation_regex": _UNLISTED_PATTERN,
            "validation_message": f"Use {TEXT_FORMS}",
            "kubespawner_override": {"bf_jupyter_slice": _custom_slice_applier(tuple(command))},
        }
    profile_override: Override = dict(extra_override or {})
    if image is not None:
        profile_override["image"] = image
    return {
        "display_name": display_name,
        "description": description,
        "slug": slug,
        "kubespawner_override": profile_override,
        "profile_options": {SLICE_OPTION: option},
    }


def _choice_key(gpu_slice: GpuSlice) -> str:
    return re.sub(r"[^a-z0-9]+", "-", gpu_slice.to_text().lower()).strip("-")


def _custom_slice_applier(command: tuple[str, ...]) -> Callable[[Any], None]:
    """KubeSpawner calls override callables with the spawner; this one parses the typed slice and
    applies the same overrides as a listed choice. The returned None lands in a throwaway attribute."""

    def apply(spawner: Any) -> None:
        typed = str(spawner.user_options.get(f"{SLICE_OPTION}--unlisted-choice", ""))
        spawner._apply_overrides(slice_overrides(GpuSlice.parse(typed), command=command))

    return apply


def _command_hook_factory(command: tuple[str, ...]) -> Callable[[Any], PodHook]:
    """KubeSpawner evaluates callables in overrides with the spawner: return the pod hook, composed
    with the hook already configured on that spawner."""

    def factory(spawner: Any) -> PodHook:
        configured: PodHook | None = getattr(spawner, "modify_pod_hook", None)

        async def hook(hook_spawner: Any, pod: Any) -> Any:
            if configured is not None and getattr(configured, "__bf_jupyter__", False) is False:
                result = configured(hook_spawner, pod)
                pod = await result if hasattr(result, "__await__") else result
            move_args_to_command(pod, default_command=command)
            return pod

        hook.__bf_jupyter__ = True  # type: ignore[attr-defined]
        return hook

    return factory


def move_args_to_command(pod: Any, *, default_command: Sequence[str] = DEFAULT_COMMAND) -> None:
    """Make the notebook container's ``command`` the full argv (``command`` + ``args``), so the
    webhook can wrap it; an image-default command becomes ``default_command``."""
    container = pod.spec.containers[0]
    argv = list(container.command or []) + list(container.args or [])
    container.command = argv or list(default_command)
    container.args = None
