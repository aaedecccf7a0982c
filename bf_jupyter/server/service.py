"""What the REST handlers call: one object per server that owns the pool, quota and GPU kernels.

Handlers stay thin (parse, one call here, write JSON); every refusal raised here is an ``ApiError``
with the status and the sentence the user reads.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bf_jupyter.backends import UnknownBackend, get_backend
from bf_jupyter.contract import QUOTA_RESOURCE
from bf_jupyter.server.cache import CoalescingCache
from bf_jupyter.server.errors import ApiError, BackendUnavailable, from_slice_error
from bf_jupyter.server.gpu_backends import offer_from_pool, offered, price_json
from bf_jupyter.server.gpu_idle import IdlePolicy
from bf_jupyter.server.gpu_kernels import GpuKernels
from bf_jupyter.server.gpu_watch import GpuWatch, kernels_on_slices
from bf_jupyter.server.pool_view import PoolReader
from bf_jupyter.server.quota import Price, QuotaReader, price
from bf_jupyter.slice import MAX_AMOUNT, GpuSlice, SliceError
from bf_jupyter.version import __version__

if TYPE_CHECKING:
    from bf_jupyter.kubeapi import KubeApi
    from bf_jupyter.server.backend import Backend

__all__ = ["GpuService"]

Json = dict[str, Any]
# The provisioners that run a kernel on a slice, per server backend (the first the usual name).
_PROVISIONERS = {
    "local": ("bitfusion-local",),
    "kubernetes": ("bitfusion-kubernetes", "gpu-kubernetes"),
}


class GpuService:
    """The pool, quota and GPU kernels of one jupyter-server, for one backend and namespace."""

    def __init__(
        self,
        *,
        backend: Backend,
        namespace: str | None,
        kernel_manager: Any,
        kernel_spec_manager: Any,
        session_manager: Any = None,
        cache_ttl: float = 5.0,
        launch_timeout: float = 300.0,
        local_quota_units: int | None = None,
        per_gpu_memory: int | None = None,
        kernelspecs: list[str] | None = None,
        gpu_backends: list[str] | None = None,
        gpu_idle: IdlePolicy | None = None,
        gpu_meter_interval: float = 5.0,
    ) -> None:
        self.backend = backend
        self.namespace = namespace
        self._specs = kernel_spec_manager
        self._configured_specs = list(kernelspecs or [])
        self._per_gpu_memory = per_gpu_memory
        self._gpu_backends = list(gpu_backends or [])
        self._kube_api: KubeApi | None = None
        self._kube_lock = threading.Lock()
        self._launching = asyncio.Lock()
        self._pool_cache: CoalescingCache[Json] = CoalescingCache(cache_ttl)
        self._quota_cache: CoalescingCache[Json] = CoalescingCache(cache_ttl)
        self.kernels = GpuKernels(
            kernel_manager=kernel_manager,
            session_manager=session_manager,
            launch_timeout=launch_timeout,
            on_change=self._kernels_changed,
            gpu_status=self._gpu_status,
        )
        self.gpu_watch = GpuWatch(
            kernels=lambda: kernels_on_slices(kernel_manager),
            stop=self.kernels.stop,
            policy=gpu_idle or IdlePolicy(),
            kernelspec_metadata=self._kernelspec_metadata,
            interval=gpu_meter_interval,
        )
        kube = self._kube if backend == "kubernetes" else None
        self._pool = PoolReader(backend, kube=kube, gpu_backends=self._gpu_backends)
        self._quota = QuotaReader(
            backend,
            namespace=namespace,
            kube=kube,
            local_limit_units=local_quota_units,
            local_used_units=lambda excluding: self.kernels.used_units(excluding=excluding),
        )

    # ----- reads (cached: many tabs share one backend call per TTL) -------------------------------

    async def pool(self) -> Json:
        return await self._pool_cache.get("pool", self._pool.read)

    async def quota(self) -> Json:
        return await self._quota_cache.get("quota", self._quota.read)

    def info(self) -> Json:
        """Backend, namespace, the slice bound (``max_gpus``) and the kernelspecs a GPU kernel can be
        launched with."""
        specs = self.gpu_kernelspecs()
        return {
            "backend": self.backend,
            "namespace": self.namespace,
            "version": __version__,
            "quota_resource": QUOTA_RESOURCE,
            "max_gpus": MAX_AMOUNT,  # the front end takes the slice bounds from here
            "kernelspecs": [{"name": n, "display_name": d} for n, d in specs.items()],
            "default_kernelspec": next(iter(specs), None),
        }

    async def describe(self) -> Json:
        """``info()`` plus the GPU backends offered here (name, title, honoured slice forms,
        isolation, quota keys), the first being the default."""
        names = await self.gpu_backend_names()
        return self.info() | {
            "gpu_backends": [get_backend(name).describe() for name in names],
            "default_gpu_backend": names[0],
        }

    async def gpu_backend_names(self) -> list[str]:
        """The configured GPU backends, else those the last pool reading discovered (bitfusion
        when nothing else is known)."""
        if self._gpu_backends or self.backend == "local":
            return offered(self._gpu_backends, None)
        try:
            pool = await self.pool()
        except BackendUnavailable:
            return offered([], None)
        return list(pool.get("gpu_backends") or offered([], None))

    async def price_on(self, slice_text: str, backend_name: str = "") -> Json:
        """What ``slice_text`` costs on one GPU backend (default: the first offered) and whether
        it fits its quota; a slice that backend cannot honour is ``fits: false`` with the reason.
        Raises ``ApiError`` 400 for a bad slice or a backend not offered here."""
        name = await self._offered_backend(backend_name)
        gpu_backend = get_backend(name)
        pool = await self._pool_or_none()
        offer = offer_from_pool(pool, name, self._per_gpu_memory)
        if name == "bitfusion":  # today's pricing (units, largest server), plus what it renders to
            verdict = await self.price(slice_text)
            details = price_json(gpu_backend, verdict.gpu_slice, [], offer)
            return verdict.to_json() | {k: details[k] for k in ("backend", "charges", "isolation")}
        gpu_slice = _parse_slice(slice_text)
        quota = await self.quota()
        entries = (quota.get("gpu_quotas") or {}).get(name, [])
        return price_json(gpu_backend, gpu_slice, entries, offer) | {"units": None, "gpus": None}

    async def _offered_backend(self, asked: str) -> str:
        """``asked`` (default: the first offered) when this server offers it. Raises ``ApiError``
        400 naming the ``backend`` field and the offered ones."""
        names = await self.gpu_backend_names()
        name = (asked or names[0]).strip().lower()
        if name not in names:
            raise ApiError(
                400,
                f"backend {name} is not offered here: use {', '.join(names)}",
                field="backend",
            )
        return name

    def kernelspec_backend(self, kernelspec: str) -> str | None:
        """The GPU backend a kernelspec is tied to: ``bitfusion`` for a local Bitfusion kernel
        (it runs under ``bitfusion run``), its provisioner config's ``gpu_backend`` when set, else
        None (any offered backend)."""
        model: Mapping[str, Any] = self._specs.get_all_specs().get(kernelspec) or {}
        provisioner = model.get("spec", {}).get("metadata", {}).get("kernel_provisioner") or {}
        if provisioner.get("provisioner_name") in _PROVISIONERS["local"]:
            return "bitfusion"
        configured = str((provisioner.get("config") or {}).get("gpu_backend") or "").strip()
        if not configured:
            return None
        try:
            return get_backend(configured).name
        except UnknownBackend as error:
            raise ApiError(400, f"kernelspec {kernelspec}: {error}", field="kernelspec") from None

    def gpu_kernelspecs(self) -> dict[str, str]:
        """name → display name of the kernelspecs that run on a slice: the configured list, else
        those whose provisioner is one of this backend's GPU provisioners."""
        found: Mapping[str, Any] = self._specs.get_all_specs()
        wanted = _PROVISIONERS[self.backend]
        names = self._configured_specs or [
            name
            for name, model in found.items()
            if (model.get("spec", {}).get("metadata", {}).get("kernel_provisioner") or {}).get(
                "provisioner_name"
            )
            in wanted
        ]
        return {
            name: str(found[name].get("spec", {}).get("display_name") or name)
            for name in names
            if name in found
        }

    async def price(self, slice_text: str) -> Price:
        """What ``slice_text`` costs now and whether it fits. Raises ``ApiError`` 400 for a bad
        slice and ``BackendUnavailable`` when the quota cannot be read."""
        gpu_slice = _parse_slice(slice_text)
        quota = await self.quota()
        pool = await self._pool_or_none()
        return price(gpu_slice, quota=quota, pool=pool, per_gpu_memory=self._per_gpu_memory)

    # ----- kernels -------------------------------------------------------------------------------

    async def launch(self, body: Mapping[str, Any]) -> Json:
        """Validate ``{slice, kernelspec?, backend?, path?}``, price the slice on the GPU backend
        (the kernelspec's, else ``backend``, else the default), check quota and pool, start in the
        background.

        Raises ``ApiError``: 400 (field named) for a bad slice, kernelspec, backend or path, or a
        slice that backend cannot honour; 409 when the slice does not fit the quota or the pool;
        503 when the backend cannot be read.
        """
        slice_text = _text_field(body, "slice", 'e.g. {"slice": "1x50%"}')
        if slice_text is None or not slice_text.strip():
            raise ApiError(400, 'slice is missing: send e.g. {"slice": "1x50%"}', field="slice")
        specs = self.gpu_kernelspecs()
        kernelspec = _text_field(body, "kernelspec", "the name of a kernelspec") or next(
            iter(specs), None
        )
        if kernelspec not in specs:
            offered = ", ".join(specs) or "none is installed (see bf-jupyter kernelspec install)"
            raise ApiError(
                400,
                f"kernelspec {kernelspec} does not run on a GPU slice with the {self.backend} backend: use {offered}",
                field="kernelspec",
            )
        path = _text_field(body, "path", "a text path")
        name = await self._launch_backend(
            str(kernelspec), _text_field(body, "backend", "the name of a GPU backend in GET info")
        )
        async with self._launching:  # two tabs must not both spend the last of the quota
            self._quota_cache.invalidate()  # decide on fresh numbers, not a tab's cached view
            if name == "bitfusion":
                verdict = await self.price(slice_text)
                if not verdict.fits:
                    raise ApiError(
                        409, verdict.reason or "The slice does not fit", field=verdict.field
                    )
                gpu_slice, units = verdict.gpu_slice, verdict.units
            else:
                gpu_slice, units = await self._admit_on(name, slice_text), None
            record = self.kernels.launch(
                gpu_slice,
                units=units,
                kernelspec=str(kernelspec),
                path=path or None,
                gpu_backend=name,
            )
        return {
            "id": record.kernel_id,
            "slice": record.gpu_slice.to_text(),
            "kernelspec": record.kernelspec,
            "backend": name,
            "state": record.state,
            "units": record.units,
        }

    async def _launch_backend(self, kernelspec: str, asked: str | None) -> str:
        """The GPU backend a launch runs on: the kernelspec's when it is tied to one (``asked``
        must then agree), else ``asked``, else the default; always one offered here. Raises
        ``ApiError`` 400 naming the ``backend`` field."""
        tied = self.kernelspec_backend(kernelspec)
        wanted = (asked or "").strip().lower()
        if tied and wanted and wanted != tied:
            raise ApiError(
                400,
                f"backend {wanted} cannot run kernelspec {kernelspec}: it runs on the {tied} "
                f"backend only; choose {tied}, or a kernelspec without a gpu_backend",
                field="backend",
            )
        return await self._offered_backend(tied or wanted)

    async def _admit_on(self, name: str, slice_text: str) -> GpuSlice:
        """The slice ``name`` will serve, priced on its pool and checked against its quota keys:
        the form a provisioner renders without the pool (``GpuBackend.resolve``). Raises
        ``ApiError`` 400 for a slice ``name`` cannot honour, 409 when it does not fit the quota."""
        gpu_backend = get_backend(name)
        gpu_slice = _parse_slice(slice_text)
        offer = offer_from_pool(await self._pool_or_none(), name, self._per_gpu_memory)
        try:
            resolved = gpu_backend.resolve(gpu_slice, offer)
        except SliceError as refused:
            raise ApiError(400, str(refused), field="slice") from None
        entries = ((await self.quota()).get("gpu_quotas") or {}).get(name, [])
        verdict = price_json(gpu_backend, gpu_slice, entries, offer)
        if not verdict["fits"]:
            raise ApiError(409, str(verdict["reason"]), field="slice")
        return resolved

    # ----- the quota gate every local kernel start passes (kernels.sliced_kernel.LaunchGate) -------

    async def admit(self, kernel_id: str, gpu_slice: GpuSlice) -> None:
        """Hold ``gpu_slice``'s units for ``kernel_id`` if they fit ``local_quota_units``; called
        by the provisioner before anything starts, for REST launches and for kernels started
        through the stock ``/api/kernels`` or ``/api/sessions`` alike. The price is the one
        ``price`` gives (memory mode included). Raises ``ApiError``: 409 over quota, 400 for a
        slice that cannot be priced. The Kubernetes backend's quota is the namespace's
        ResourceQuota, enforced by the API server: nothing is held here."""
        if self.backend != "local" or self._quota.local_limit is None:
            return
        async with (
            self._launching
        ):  # one admission at a time: two starts cannot share the last units
            quota = await self._quota.read(excluding=kernel_id)
            pool = await self._pool_or_none()
            try:
                verdict = price(
                    gpu_slice, quota=quota, pool=pool, per_gpu_memory=self._per_gpu_memory
                )
                if not verdict.fits:
                    raise ApiError(409, verdict.reason or "The slice does not fit", field="slice")
            except ApiError:
                self.kernels.forget_refused_start(kernel_id)
                raise
            self.kernels.hold(kernel_id, gpu_slice, verdict.units)

    def release(self, kernel_id: str) -> None:
        self.kernels.release(kernel_id)

    async def close(self) -> None:
        await self.gpu_watch.close()
        await self.kernels.close()
        if self._kube_api is not None:
            await asyncio.to_thread(self._kube_api.close)

    # ----- plumbing ------------------------------------------------------------------------------

    def _kernels_changed(self) -> None:
        """A GPU kernel started, failed or stopped: the next pool and quota readings must show it
        (its lease, its units), not what a tab read a moment before."""
        self._quota_cache.invalidate()
        self._pool_cache.invalidate()
        self.gpu_watch.ensure_running()  # started with the first GPU kernel (needs a running loop)

    def _gpu_status(self, kernel_id: str) -> Json:
        """``gpu`` and ``gpu_idle`` of a kernel for ``GET kernels`` (the watch's last reading)."""
        self.gpu_watch.ensure_running()
        return {
            "gpu": self.gpu_watch.reading(kernel_id),
            "gpu_idle": self.gpu_watch.idle(kernel_id),
        }

    def _kernelspec_metadata(self, name: str) -> Any:
        try:
            return self._specs.get_kernel_spec(name).metadata
        except Exception:  # removed or unreadable since the kernel started: the server's policy
            return None

    async def _pool_or_none(self) -> Json | None:
        """The pool when it can be read; pricing works without it on Kubernetes (nodes only)."""
        try:
            return await self.pool()
        except BackendUnavailable:
            if self.backend == "local":
                raise
            return None

    def _kube(self) -> KubeApi:
        """Connect once, on first use (blocking: called from worker threads)."""
        from bf_jupyter.kubeapi import KubeApi, KubeUnavailable

        with self._kube_lock:
            if self._kube_api is None:
                try:
                    self._kube_api = KubeApi.connect()
                except KubeUnavailable as error:
                    raise BackendUnavailable(str(error)) from None
            return self._kube_api


def _text_field(body: Mapping[str, Any], name: str, accepted: str) -> str | None:
    """``body[name]`` when it is text, None when absent or null; any other JSON type is a 400
    naming the field (a list or object must never reach a dict lookup as a 500)."""
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    shown = json.dumps(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise ApiError(400, f"{name} {shown} is not a text value: send {accepted}", field=name)


def _parse_slice(text: str) -> GpuSlice:
    try:
        return GpuSlice.parse(text)
    except SliceError as error:
        raise from_slice_error(error) from None
