"""The namespace's GPU quota, and what a slice costs against it and whether it fits.

Kubernetes backend: ``ResourceQuota`` objects in the configured namespace that limit
``bitfusion.io/gpu`` (written ``requests.bitfusion.io/gpu`` for extended resources); the tightest
one wins; ``gpu_quotas`` lists every GPU backend's keys found in them. Local backend: the optional ``local_quota_units`` setting, counted against this server's
own GPU kernels. Units always come from the GPU backend's ``price`` (``bf_jupyter.backends``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bf_jupyter.backends import BACKEND_NAMES, GpuBackend, Offer, get_backend
from bf_jupyter.contract import QUOTA_RESOURCE, UNITS_PER_GPU, units_to_gpus
from bf_jupyter.quantity import MIB, QuantityError, format_bytes, parse_quantity
from bf_jupyter.server.errors import ApiError, BackendUnavailable
from bf_jupyter.server.gpu_backends import gpu_quotas_text, quotas_json
from bf_jupyter.slice import GpuSlice, SliceError

if TYPE_CHECKING:
    from bf_jupyter.kubeapi import KubeApi
    from bf_jupyter.server.backend import Backend

__all__ = ["QUOTA_KEYS", "Price", "QuotaReader", "price"]

Json = dict[str, Any]
# How a ResourceQuota spells a limit on the extended resource (both forms are accepted by the API).
QUOTA_KEYS = get_backend("bitfusion").quota_keys()


class QuotaReader:
    """Reads the quota of one namespace (Kubernetes) or of this server (local)."""

    def __init__(
        self,
        backend: Backend,
        *,
        namespace: str | None,
        kube: Callable[[], KubeApi] | None = None,
        local_limit_units: int | None = None,
        local_used_units: Callable[[str | None], int] = lambda _excluding: 0,
    ) -> None:
        self.backend = backend
        self.namespace = namespace
        self._kube = kube
        self._local_limit = local_limit_units
        self._local_used = local_used_units

    @property
    def local_limit(self) -> int | None:
        return self._local_limit

    async def read(self, *, excluding: str | None = None) -> Json:
        """The quota as JSON (``openapi.yaml``, ``Quota``), local use counted without the kernel
        ``excluding``. Raises ``BackendUnavailable`` (503)."""
        if self.backend == "local":
            if self._local_limit is None:
                return _no_quota(self.backend, None, "No GPU quota: this server sets no limit.")
            return _quota(
                self.backend,
                None,
                "local_quota_units setting",
                self._local_limit,
                self._local_used(excluding),
            )
        return await asyncio.to_thread(self._read_cluster)

    def _read_cluster(self) -> Json:
        from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable

        if self._kube is None or not self.namespace:
            raise BackendUnavailable("The kubernetes backend has no namespace configured")
        try:
            quotas = self._kube().list("ResourceQuota", self.namespace)
        except (KubeApiError, KubeUnavailable) as error:
            raise BackendUnavailable(f"The namespace quota could not be read: {error}") from None
        per_backend = {"gpu_quotas": quotas_json(BACKEND_NAMES, quotas)}
        tightest: tuple[int, str, int, int] | None = None
        for item in quotas:
            status = item.get("status") or {}
            hard_map, used_map = status.get("hard") or {}, status.get("used") or {}
            for key in QUOTA_KEYS:
                if key in hard_map:
                    hard, used = _units(hard_map[key]), _units(used_map.get(key, 0))
                    if tightest is None or hard - used < tightest[0]:
                        tightest = (hard - used, item["metadata"]["name"], hard, used)
        if tightest is None:
            others = gpu_quotas_text(per_backend["gpu_quotas"])
            message = f"No GPU quota: namespace {self.namespace} does not limit {QUOTA_RESOURCE}."
            if others:
                message = f"Namespace {self.namespace} does not limit {QUOTA_RESOURCE}; {others}"
            return per_backend | _no_quota(self.backend, self.namespace, message)
        _, name, hard, used = tightest
        return per_backend | _quota(
            self.backend, self.namespace, f"ResourceQuota {name}", hard, used
        )


@dataclass(frozen=True)
class Price:
    """What a slice costs and whether it can be launched now; ``reason`` says why not."""

    gpu_slice: GpuSlice
    units: int
    fits: bool
    reason: str | None = None
    field: str | None = None

    def to_json(self) -> Json:
        return {
            "slice": self.gpu_slice.to_text(),
            "description": self.gpu_slice.describe(),
            "units": self.units,
            "gpus": units_to_gpus(self.units),
            "fits": self.fits,
            "reason": self.reason,
            "field": self.field,
        }


def price(
    gpu_slice: GpuSlice,
    *,
    quota: Json,
    pool: Json | None,
    per_gpu_memory: int | None,
    gpu_backend: GpuBackend | None = None,
) -> Price:
    """Price ``gpu_slice`` in quota units and check it against the quota and the pool's shape.

    Raises ``ApiError`` (400, field ``slice``) when it cannot be priced, e.g. memory mode with no
    known per-GPU memory, or more memory than one GPU has.
    """
    memory = per_gpu_memory
    if memory is None and pool and pool.get("gpu_memory_mib"):
        memory = int(pool["gpu_memory_mib"]) * MIB
    backend = gpu_backend or get_backend("bitfusion")
    try:
        charges = backend.price(gpu_slice, Offer(per_gpu_memory_bytes=memory))
        units = next((c.amount for c in charges if c.resource == QUOTA_RESOURCE), 0)
    except SliceError as error:
        raise ApiError(400, str(error), field="slice") from None
    largest = (pool or {}).get("largest_server_gpus")
    if largest is not None and gpu_slice.amount > largest:
        reason = (
            f"{gpu_slice.describe()} needs {gpu_slice.amount} GPUs from one server, "
            f"but the largest server has {largest}"
        )
        return Price(gpu_slice, units, False, reason, "slice")
    remaining = quota.get("remaining_units")
    if quota.get("has_quota") and remaining is not None and units > remaining:
        reason = (
            f"{gpu_slice.describe()} costs {units} {QUOTA_RESOURCE} units but only {remaining} "
            f"of {quota['hard_units']} remain in the quota ({quota['source']})"
        )
        return Price(gpu_slice, units, False, reason, "slice")
    return Price(gpu_slice, units, True)


def parse_memory_setting(text: str) -> int | None:
    """The ``per_gpu_memory`` setting (``16Gi``) in bytes; '' means unknown. Raises ValueError."""
    if not text.strip():
        return None
    try:
        value = parse_quantity(text.strip())
    except QuantityError:
        raise ValueError(
            f"per_gpu_memory {text!r} is not a memory quantity: use e.g. 16Gi"
        ) from None
    if value.denominator != 1 or value < MIB:
        raise ValueError(
            f"per_gpu_memory {text!r} is too small: use e.g. 16Gi ({format_bytes(MIB)} at least)"
        )
    return int(value)


def _quota(backend: Backend, namespace: str | None, source: str, hard: int, used: int) -> Json:
    remaining = max(0, hard - used)
    return {
        "backend": backend,
        "namespace": namespace,
        "has_quota": True,
        "message": f"{units_to_gpus(remaining):g} of {units_to_gpus(hard):g} GPUs remain ({source}).",
        "source": source,
        "unit": f"{QUOTA_RESOURCE}: 1 unit = 1/{UNITS_PER_GPU} of a GPU",
        "hard_units": hard,
        "used_units": used,
        "remaining_units": remaining,
        "hard_gpus": units_to_gpus(hard),
        "used_gpus": units_to_gpus(used),
        "remaining_gpus": units_to_gpus(remaining),
    }


def _no_quota(backend: Backend, namespace: str | None, message: str) -> Json:
    return {
        "backend": backend,
        "namespace": namespace,
        "has_quota": False,
        "message": message,
        "source": None,
        "unit": f"{QUOTA_RESOURCE}: 1 unit = 1/{UNITS_PER_GPU} of a GPU",
        "hard_units": None,
        "used_units": None,
        "remaining_units": None,
        "hard_gpus": None,
        "used_gpus": None,
        "remaining_gpus": None,
    }


def _units(value: object) -> int:
    try:
        return int(parse_quantity(str(value)))
    except QuantityError:
        return 0
