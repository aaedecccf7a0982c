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
hook you configured yourself) and asks the API server for a dry run of the pod: a slice the
quota, the webhooks or the nodes refuse fails the spawn with the API server's own message, before
anything is created. Its ``after_pod_created_hook`` then follows the pod until it runs, failing the
spawn at once with the reason when it cannot (an image that cannot be pulled, a container that
cannot be created or exits), instead of after ``start_timeout``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bf_jupyter.backends import NO_OFFER, GpuBackend, Offer, get_backend
from bf_jupyter.contract import ENV_GPU_BACKEND, ENV_SLICE
from bf_jupyter.slice import TEXT_FORMS, TEXT_SHAPE, GpuSlice, SliceError

__all__ = [
    "SLICE_OPTION",
    "ProfileMarks",
    "SpawnRefused",
    "gpu_slice_profile",
    "gpu_slice_profiles",
    "profile_marks",
    "slice_overrides",
]

SLICE_OPTION = "gpu"
DEFAULT_COMMAND = ("jupyterhub-singleuser",)

Override = dict[str, Any]
PodHook = Callable[[Any, Any], Any]
# Where gpu_slice_profile records what it offers, for the spawn form's fit check (bf_jupyter.hub_form).
MARKS_KEY = "bf_jupyter"
CHOICE_SLICE_KEY = "bf_jupyter_slice"
# Container states that no waiting cures: the spawn fails at once with the kubelet's message.
_HOPELESS_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
    }
)
_START_POLL_SECONDS = 0.25


def _http_error_base() -> type[Exception]:
    # tornado is JupyterHub's web framework: an HTTPError raised while a spawn is being started is
    # shown on the spawn form itself; later, on the spawn-pending page.
    from tornado.web import HTTPError

    return HTTPError


class SpawnRefused(_http_error_base()):  # type: ignore[misc]
    """A spawn that cannot succeed; ``jupyterhub_message`` is what the spawn page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, log_message=message.replace("%", "%%"))
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return str(self.jupyterhub_message)


@dataclass(frozen=True)
class ProfileMarks:
    """What a ``gpu_slice_profile`` entry offers: its backend and configured MIG profiles."""

    backend: str
    mig_profiles: tuple[str, ...]


def profile_marks(profile: Mapping[str, Any]) -> ProfileMarks | None:
    """The marks of a ``gpu_slice_profile`` entry; None for any other profile."""
    marks = profile.get(MARKS_KEY)
    if not isinstance(marks, Mapping):
        return None
    return ProfileMarks(str(marks["backend"]), tuple(marks.get("mig_profiles") or ()))


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
        "after_pod_created_hook": _start_hook_factory,
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
            CHOICE_SLICE_KEY: s.to_text(),
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
        MARKS_KEY: {"backend": gpu_backend.name, "mig_profiles": list(mig_profiles)},
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
        try:
            overrides = slice_overrides(
                GpuSlice.parse(typed), command=command, backend=backend, offer=offer
            )
        except SliceError as error:
            raise SpawnRefused(400, str(error)) from None
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
            await _dry_run(hook_spawner, pod)
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


async def _dry_run(spawner: Any, pod: Any) -> None:
    """Ask the API server to admit ``pod`` without creating it (quota, our webhooks, every other
    admission check); raise ``SpawnRefused`` with its message when it refuses."""
    from kubernetes_asyncio.client.exceptions import ApiException

    try:
        await spawner.api.create_namespaced_pod(spawner.namespace, pod, dry_run="All")
    except ApiException as error:
        if error.status == 409:  # an old pod of this server: KubeSpawner replaces it
            return
        raise SpawnRefused(error.status or 500, _api_message(error)) from None
    except Exception as error:  # the API unreachable: the real create reports it
        spawner.log.warning(
            "The dry run of %s failed (%s); creating it anyway", pod.metadata.name, error
        )


def _api_message(error: Any) -> str:
    """The ``message`` of the API server's Status body (what kubectl prints), else the reason."""
    import json

    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or error)


def _start_hook_factory(spawner: Any) -> PodHook:
    """KubeSpawner evaluates override callables with the spawner: return the after-create hook,
    composed with the one configured on that spawner."""
    configured: PodHook | None = getattr(spawner, "after_pod_created_hook", None)

    async def hook(hook_spawner: Any, pod: Any) -> None:
        if configured is not None and getattr(configured, "__bf_jupyter__", False) is False:
            result = configured(hook_spawner, pod)
            if hasattr(result, "__await__"):
                await result
        await wait_until_running(hook_spawner)

    hook.__bf_jupyter__ = True  # type: ignore[attr-defined]
    return hook


async def wait_until_running(spawner: Any) -> None:
    """Follow the spawner's pod (KubeSpawner's pod reflector, a watch) until it runs; raise
    ``SpawnRefused`` with the kubelet's reason as soon as a container cannot start or the pod
    ends. KubeSpawner's ``start_timeout`` still bounds the whole spawn."""
    import asyncio

    key = f"{spawner.namespace}/{spawner.pod_name}"
    while True:
        pod = spawner.pod_reflector.pods.get(key)
        if pod is not None:
            if spawner.is_pod_running(pod):
                return
            reason = pod_failure(pod)
            if reason is not None:
                raise SpawnRefused(500, f"The server's pod {key} cannot start: {reason}")
        await asyncio.sleep(_START_POLL_SECONDS)  # the reflector's in-memory copy, not the API


def pod_failure(pod: Mapping[str, Any]) -> str | None:
    """Why ``pod`` (a Pod dict) will never run, or None while it still may."""
    status = pod.get("status") or {}
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in statuses:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in _HOPELESS_WAITING:
            detail = waiting.get("message") or waiting["reason"]
            return f"container {container.get('name')}: {waiting['reason']}: {detail}"
    if status.get("phase") in ("Failed", "Succeeded"):
        for container in statuses:
            ended = (container.get("state") or {}).get("terminated") or {}
            if ended and ended.get("exitCode") != 0:
                return (
                    f"container {container.get('name')} exited with {ended.get('exitCode')}"
                    f" ({ended.get('reason') or 'Error'}): {ended.get('message') or ''}".rstrip(
                        ": "
                    )
                )
        return f"the pod ended ({status.get('phase')}): {status.get('message') or status.get('reason') or ''}".rstrip(
            ": "
        )
    return None
