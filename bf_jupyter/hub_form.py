"""The spawn form says what fits: a callable ``profile_list`` that, for each user's form (and again
at spawn), reads the user's namespace quota and the nodes' GPU capacity with the hub's own
credentials, and marks every GPU slice choice that would be refused as unavailable, with the reason.

In ``jupyterhub_config.py``::

    from bf_jupyter.hub import gpu_slice_profile
    from bf_jupyter.hub_form import FORM_TEMPLATES, fitting_profile_list

    c.KubeSpawner.profile_list = fitting_profile_list([
        {"display_name": "CPU only", "slug": "cpu", "default": True},
        gpu_slice_profile(slices=["1x25%", "1x50%", "1"]),
    ])
    c.KubeSpawner.additional_profile_form_template_paths = [FORM_TEMPLATES]

Users need no permission: the hub's service account lists ResourceQuotas in the namespaces it
spawns into and Nodes (``cluster/hub``). An unavailable choice is shown disabled with its reason
(KubeSpawner's own template shows the reason in the choice's name), the GPU profile's description
ends with the remaining quota, and a spawn that asks for an unavailable choice anyway (the REST
API, a stale form) fails with the same reason before any pod is created. What the form cannot know
(another spawn taking the quota meanwhile, a typed slice) is refused by the API server at spawn,
and that message is shown (``bf_jupyter.hub``).
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bf_jupyter.backends import GpuBackend, Offer, get_backend
from bf_jupyter.hub import CHOICE_SLICE_KEY, SLICE_OPTION, SpawnRefused, profile_marks
from bf_jupyter.server.errors import ApiError
from bf_jupyter.server.gpu_backends import price_json
from bf_jupyter.server.quota import cluster_quota_json, price
from bf_jupyter.slice import GpuSlice, SliceError

if TYPE_CHECKING:
    from bf_jupyter.kubeapi import KubeApi

__all__ = ["FORM_TEMPLATES", "FitContext", "fitting_profile_list", "mark_fit", "read_fit_context"]

Json = dict[str, Any]
Profiles = list[dict[str, Any]]
# The spawn form template that shows unavailable choices disabled, with their reasons.
FORM_TEMPLATES = str(Path(__file__).resolve().parent / "hub_templates")
_API: dict[str, KubeApi] = {}
_API_LOCK = threading.Lock()


@dataclass(frozen=True)
class FitContext:
    """What the form is judged against: the namespace's ResourceQuotas and the Node objects."""

    namespace: str
    quotas: Sequence[Json]
    nodes: Sequence[Json]


def fitting_profile_list(
    profiles: Sequence[Mapping[str, Any]],
    *,
    kube: Callable[[], KubeApi] | None = None,
) -> Callable[[Any], Awaitable[Profiles]]:
    """A callable for ``KubeSpawner.profile_list``: ``profiles`` (``gpu_slice_profile`` entries
    and any others) marked for the spawner's namespace. ``kube`` gives the API connection (default:
    one per hub process, from ``$KUBECONFIG`` or the in-cluster account). When the cluster cannot be
    read the form is still shown, unmarked, with the reason in the GPU profiles' descriptions.
    The callable's ``profiles`` attribute holds ``profiles`` as configured."""
    offered = [dict(p) for p in profiles]
    connect = kube or _hub_api

    async def profile_list(spawner: Any) -> Profiles:
        try:
            context = await asyncio.to_thread(read_fit_context, connect(), spawner.namespace)
        except Exception as error:  # any cluster trouble: offer the form as configured
            return _note_unreadable(offered, error)
        return mark_fit(offered, context)

    profile_list.profiles = offered  # type: ignore[attr-defined]  # as configured, for inspection
    return profile_list


def read_fit_context(api: KubeApi, namespace: str) -> FitContext:
    """The namespace's ResourceQuotas and every Node (two list calls). Raises ``KubeApiError``."""
    return FitContext(namespace, api.list("ResourceQuota", namespace), api.list("Node"))


def mark_fit(profiles: Sequence[Mapping[str, Any]], context: FitContext) -> Profiles:
    """A copy of ``profiles`` where each GPU slice choice that does not fit ``context`` carries
    ``unavailable`` (the reason), says so in its name, cannot be the default, and refuses a spawn
    with the reason; GPU profiles' descriptions end with the remaining quota."""
    marked: Profiles = [copy.deepcopy(dict(p)) for p in profiles]
    quota = cluster_quota_json(context.namespace, list(context.quotas))
    for profile in marked:
        marks = profile_marks(profile)
        if marks is None:
            continue
        backend = get_backend(marks.backend)
        pool = backend.read_pool(context.nodes, None)
        offer = Offer(
            per_gpu_memory_bytes=pool.offer().per_gpu_memory_bytes,
            mig_profiles=marks.mig_profiles or pool.offer().mig_profiles,
        )
        entries = quota["gpu_quotas"].get(backend.name, [])
        option = profile["profile_options"][SLICE_OPTION]
        for choice in option["choices"].values():
            gpu_slice = GpuSlice.parse(choice[CHOICE_SLICE_KEY])
            reason = _why_not(
                backend, gpu_slice, quota=quota, entries=entries, offer=offer, pool=pool.to_json()
            )
            if reason is not None:
                _mark_unavailable(choice, reason)
        _move_default_to_an_available_choice(option["choices"])
        remaining = _remaining(backend.name, quota, entries)
        profile["description"] = f"{profile.get('description', '')} {remaining}".strip()
    return marked


def _why_not(
    backend: GpuBackend,
    gpu_slice: GpuSlice,
    *,
    quota: Json,
    entries: list[Json],
    offer: Offer,
    pool: Json,
) -> str | None:
    """Why ``gpu_slice`` does not fit, priced as the server prices it (Bitfusion: quota units)."""
    try:
        priced = price_json(backend, gpu_slice, entries, offer)
    except SliceError as error:  # e.g. a memory slice with no known per-GPU memory
        return str(error)
    if backend.name == "bitfusion":
        try:
            verdict = price(
                gpu_slice,
                quota=quota,
                pool=None,
                per_gpu_memory=offer.per_gpu_memory_bytes,
                gpu_backend=backend,
            )
        except ApiError as error:
            return error.message
        if not verdict.fits:
            return verdict.reason
    if not priced["fits"]:
        return str(priced["reason"])
    return _capacity_refusal(gpu_slice, priced["charges"], pool)


def _capacity_refusal(gpu_slice: GpuSlice, charges: list[Json], pool: Json) -> str | None:
    """A charge larger than what any node has (free, or allocatable when pods are not read)."""
    for charge in charges:
        capacities = [r for r in pool["resources"] if r["resource"] == charge["resource"]]
        if not capacities:
            continue
        most = max(r["allocatable"] if r["free"] is None else r["free"] for r in capacities)
        if charge["amount"] > most:
            return (
                f"{gpu_slice.describe()} needs {charge['amount']} of {charge['resource']} on "
                f"one node, but no node has more than {most}"
            )
    return None


def _mark_unavailable(choice: dict[str, Any], reason: str) -> None:
    choice["unavailable"] = reason
    choice["display_name"] = f"{choice['display_name']} — unavailable: {reason}"
    choice["default"] = False
    choice["kubespawner_override"] = {"bf_jupyter_refusal": _refusal(reason)}


def _refusal(reason: str) -> Callable[[Any], None]:
    def refuse(_spawner: Any) -> None:
        raise SpawnRefused(403, f"The slice you chose does not fit: {reason}.")

    return refuse


def _move_default_to_an_available_choice(choices: dict[str, dict[str, Any]]) -> None:
    available = [c for c in choices.values() if "unavailable" not in c]
    if available and not any(c.get("default") for c in available):
        available[0]["default"] = True


def _remaining(backend_name: str, quota: Json, entries: list[Json]) -> str:
    if backend_name == "bitfusion":
        return f"Quota: {quota['message']}" if quota["has_quota"] else "No GPU quota here."
    if not entries:
        return "No GPU quota here."
    tightest = min(entries, key=lambda e: e["remaining"])
    return (
        f"Quota: {tightest['remaining']} of {tightest['hard']} {tightest['key']} remain "
        f"({tightest['source']})."
    )


def _note_unreadable(profiles: Profiles, error: Exception) -> Profiles:
    noted = copy.deepcopy(profiles)
    for profile in noted:
        if profile_marks(profile) is not None:
            profile["description"] = (
                f"{profile.get('description', '')} The GPU quota could not be read ({error}); "
                "a slice that does not fit is refused when the server starts."
            ).strip()
    return noted


def _hub_api() -> KubeApi:
    from bf_jupyter.kubeapi import KubeApi

    with _API_LOCK:
        if "hub" not in _API:
            _API["hub"] = KubeApi.connect()
        return _API["hub"]
