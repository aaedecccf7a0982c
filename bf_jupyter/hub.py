"""JupyterHub: offer GPU slices at spawn time through KubeSpawner's ``profile_list``.

In ``jupyterhub_config.py``::

    from bf_jupyter.hub import gpu_slice_profile
    c.KubeSpawner.profile_list = [
        {"display_name": "CPU only", "slug": "cpu", "default": True},
        gpu_slice_profile(slices=["1x25%", "1x50%", "1"], image="registry.local/bf-kernel:1.0"),
    ]

or one profile per GPU backend the cluster runs (each choice labelled with its isolation)::

    c.KubeSpawner.profile_list = gpu_slice_profiles(
        {"hami": ["1x8Gi cores=30", "1x50%"], "nvidia": ["mig-1g.10gb", "1"]},
        image="registry.local/bf-kernel:1.0",
        mig_profiles=["mig-1g.10gb", "mig-3g.40gb"],
    )

The user picks a slice from a list (or types one, e.g. ``2x8Gi``); the profile renders it with the
chosen GPU backend (``backend="bitfusion"`` by default: the slice's resource keys in the notebook
container's limits, and the pod asks our webhook to manage it; ``hami``, ``nvidia``… put their own
keys, annotations and scheduler name on the pod). KubeSpawner
puts the server command in ``args`` (``command`` empty), and the webhook only wraps ``command``, so the
profile also installs a ``modify_pod_hook`` that moves the argv into ``command`` (composed with any
hook you configured yourself).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bf_jupyter.backends import NO_OFFER, GpuBackend, Offer, get_backend
from bf_jupyter.contract import ENV_GPU_BACKEND, ENV_SLICE
from bf_jupyter.slice import TEXT_FORMS, TEXT_SHAPE, GpuSlice, SliceError

__all__ = ["SLICE_OPTION", "gpu_slice_profile", "gpu_slice_profiles", "slice_overrides"]

SLICE_OPTION = "gpu"
DEFAULT_COMMAND = ("jupyterhub-singleuser",)

Override = dict[str, Any]
PodHook = Callable[[Any, Any], Any]


def slice_overrides(
    gpu_slice: GpuSlice,
    *,
    command: Sequence[str] = DEFAULT_COMMAND,
    backend: GpuBackend | None = None,
    offer: Offer = NO_OFFER,
) -> Override:
    """KubeSpawner overrides that put ``gpu_slice`` on the notebook container, rendered by
    ``backend`` (default Bitfusion). Raises ``SliceError`` for a slice it cannot honour."""
    gpu_backend = backend or get_backend("bitfusion")
    rendering = gpu_backend.render(gpu_slice, offer)
    overrides: Override = {
        "extra_resource_limits": dict(rendering.limits),
        "extra_annotations": dict(rendering.annotations),
        "environment": {
            **rendering.env,
            ENV_SLICE: gpu_slice.to_text(),
            ENV_GPU_BACKEND: gpu_backend.name,  # %bitfusion submit's default backend
        },
        "modify_pod_hook": _command_hook_factory(tuple(command)),
    }
    if rendering.scheduler_name:
        overrides["scheduler_name"] = rendering.scheduler_name
    if rendering.node_selector:
        overrides["node_selector"] = dict(rendering.node_selector)
    if rendering.pod_claims:
        overrides["extra_pod_config"] = {"resourceClaims": [dict(c) for c in rendering.pod_claims]}
    if rendering.container_claims:
        overrides["extra_container_config"] = {
            "resources": {"claims": [dict(c) for c in rendering.container_claims]}
        }
    return overrides


def gpu_slice_profile(
    *,
    slices: Sequence[str] = ("1x25%", "1x50%", "1"),
    default: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    slug: str | None = None,
    image: str | None = None,
    command: Sequence[str] = DEFAULT_COMMAND,
    allow_custom: bool = True,
    extra_override: Override | None = None,
    backend: str = "bitfusion",
    mig_profiles: Sequence[str] = (),
) -> dict[str, Any]:
    """One ``profile_list`` entry offering ``slices`` (text forms; validated now, so a typo in
    ``jupyterhub_config.py`` fails at hub start with the slice error) and, when ``allow_custom``,
    a free-form slice field. ``backend`` names the GPU backend that renders the slices
    (``bf_jupyter.backends.BACKEND_NAMES``); ``mig_profiles`` are the MIG profiles the cluster
    offers (nvidia backends map memory slices onto them). Raises ``SliceError`` for a bad slice, one
    the backend cannot honour, or a ``default`` not in ``slices``; ``UnknownBackend`` for a bad
    ``backend``. ``display_name``, ``description`` and ``slug`` default to the backend's
    (``GPU notebook (HAMi)``, its isolation, ``hami-gpu``); each choice shows its isolation.
    """
    gpu_backend = get_backend(backend)
    names = _profile_names(gpu_backend)
    display_name = display_name if display_name is not None else names[0]
    description = description if description is not None else names[1]
    slug = slug if slug is not None else names[2]
    offer = Offer(mig_profiles=tuple(mig_profiles))
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
            "display_name": f"{s.describe()} · {gpu_backend.isolation_of(s, offer).label}",
            "default": s == chosen,
            "kubespawner_override": slice_overrides(
                s, command=command, backend=gpu_backend, offer=offer
            ),
        }
        for s in parsed
    }
    option: dict[str, Any] = {"display_name": "GPU slice", "choices": choices}
    if allow_custom:
        option["unlisted_choice"] = {
            "enabled": True,
            "display_name": "GPU slice",
            "display_name_in_choices": "Other slice…",
            "validation_regex": TEXT_SHAPE,
            "validation_message": f"Use {TEXT_FORMS}",
            "kubespawner_override": {
                "bf_jupyter_slice": _custom_slice_applier(tuple(command), gpu_backend, offer)
            },
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


def gpu_slice_profiles(
    slices_per_backend: Mapping[str, Sequence[str]], **common: Any
) -> list[dict[str, Any]]:
    """One ``gpu_slice_profile`` per GPU backend, in the mapping's order: ``{"hami": [...],
    "nvidia": [...]}``; ``common`` are the other ``gpu_slice_profile`` arguments (``image``,
    ``mig_profiles``, ``command``…), except ``backend``, ``slices`` and the names, which come from
    each backend. Raises what ``gpu_slice_profile`` raises, naming the backend."""
    if not slices_per_backend:
        raise SliceError(
            "slices_per_backend",
            "{}",
            "is empty",
            "map a backend to its slices, e.g. {'hami': ['1x50%']}",
        )
    clashing = sorted(set(common) & {"backend", "slices", "display_name", "slug", "description"})
    if clashing:
        raise TypeError(f"gpu_slice_profiles takes {clashing[0]} per backend, not for all of them")
    return [
        gpu_slice_profile(slices=slices, backend=backend, **common)
        for backend, slices in slices_per_backend.items()
    ]


_BITFUSION_NAMES = (
    "GPU notebook (Bitfusion)",
    "A notebook server on a slice of a network-attached GPU.",
    "bitfusion-gpu",
)


def _profile_names(backend: GpuBackend) -> tuple[str, str, str]:
    """Display name, description and slug of a backend's profile (Bitfusion's as they were)."""
    if backend.name == "bitfusion":
        return _BITFUSION_NAMES
    description = f"A notebook server on a GPU slice: {backend.isolation.sentence}"
    return f"GPU notebook ({backend.title})", description, f"{backend.name}-gpu"


def _choice_key(gpu_slice: GpuSlice) -> str:
    return re.sub(r"[^a-z0-9]+", "-", gpu_slice.to_text().lower()).strip("-")


def _custom_slice_applier(
    command: tuple[str, ...], backend: GpuBackend, offer: Offer
) -> Callable[[Any], None]:
    """KubeSpawner calls override callables with the spawner; this one parses the typed slice and
    applies the same overrides as a listed choice. The returned None lands in a throwaway attribute."""

    def apply(spawner: Any) -> None:
        typed = str(spawner.user_options.get(f"{SLICE_OPTION}--unlisted-choice", ""))
        overrides = slice_overrides(
            GpuSlice.parse(typed), command=command, backend=backend, offer=offer
        )
        spawner._apply_overrides(overrides)

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
