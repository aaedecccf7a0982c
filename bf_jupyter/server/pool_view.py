"""The GPU pool as the sidebar shows it: servers and GPUs, and on Kubernetes the nodes' GPU units.

Local backend: what the Bitfusion client's ``list_gpus`` reports (``bitfusion-sim`` marks its pool
simulated). Kubernetes backend: also every offered GPU backend's pool (``gpu_pools``: HAMi's GPUs
with memory and cores in use, NVIDIA's whole/MIG/shared resources), read from the same listing. Kubernetes backend: each node's allocatable and requested ``bitfusion.io/gpu`` (what
the scheduler works with), plus the Bitfusion pool when a real client is configured in this pod
(``$BF_BITFUSION_BIN`` or ``bitfusion`` on PATH); the embedded simulator is never shown as a
cluster's pool. Blocking calls run in a thread; results are cached by the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from bf_jupyter.backends import get_backend
from bf_jupyter.backends.dra import DraBackend
from bf_jupyter.bitfusion.client import BitfusionClientError, resolve_client
from bf_jupyter.contract import QUOTA_RESOURCE, units_to_gpus
from bf_jupyter.server.errors import BackendUnavailable
from bf_jupyter.server.gpu_backends import offered, pools_json

if TYPE_CHECKING:
    from bf_jupyter.bitfusion.records import PoolListing
    from bf_jupyter.kubeapi import KubeApi
    from bf_jupyter.server.backend import Backend

__all__ = ["PoolReader", "listing_to_json"]

Json = dict[str, Any]
_UNFINISHED = "status.phase!=Succeeded,status.phase!=Failed"


class PoolReader:
    """Reads the pool for one backend. ``kube`` connects lazily (only the Kubernetes backend uses it)."""

    def __init__(
        self,
        backend: Backend,
        *,
        kube: Callable[[], KubeApi] | None = None,
        gpu_backends: Sequence[str] = (),
    ) -> None:
        self.backend = backend
        self._kube = kube
        self.gpu_backends = list(gpu_backends)  # configured; empty: discovered from the nodes

    async def read(self) -> Json:
        """The pool as JSON (see ``openapi.yaml``, ``Pool``).

        Raises ``BackendUnavailable`` (503) when the local client fails, or on Kubernetes when
        neither the nodes nor a Bitfusion client could be read.
        """
        if self.backend == "local":
            listing = await asyncio.to_thread(_local_listing)
            pool = _pool_json("local", listing, nodes=[], warnings=[])
            return pool | {"gpu_backends": offered(self.gpu_backends, None), "gpu_pools": {}}
        return await asyncio.to_thread(self._read_cluster)

    def _read_cluster(self) -> Json:
        from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable

        warnings: list[str] = []
        raw_nodes: list[Json] = []
        raw_pods: list[Json] | None = None
        try:
            raw_nodes, raw_pods = self._cluster_objects()
        except (KubeApiError, KubeUnavailable) as error:
            warnings.append(f"Cluster nodes could not be read: {error}")
        slices, claims = self._dra_objects()
        names = offered(self.gpu_backends, raw_nodes or None, slices)
        pools = pools_json(
            sorted({*names, "bitfusion"}), raw_nodes, raw_pods, slices=slices, claims=claims
        )
        nodes = [
            {
                "name": r["node"],
                "allocatable_units": r["allocatable"],
                "used_units": r["used"],
                "allocatable_gpus": units_to_gpus(r["allocatable"]),
            }
            for r in pools["bitfusion"]["resources"]
            if r["resource"] == QUOTA_RESOURCE
        ]
        listing = None
        client = resolve_client()
        if client.source != "embedded":
            try:
                listing = client.list_gpus(timeout=10)
            except BitfusionClientError as error:
                warnings.append(f"The Bitfusion pool could not be read: {error}")
        if not nodes and listing is None and warnings:
            raise BackendUnavailable(" ".join(warnings))
        pool = _pool_json("kubernetes", listing, nodes=nodes, warnings=warnings)
        return pool | {"gpu_backends": names, "gpu_pools": {n: pools[n] for n in names}}

    def _cluster_objects(self) -> tuple[list[Json], list[Json] | None]:
        """The Node objects and the unfinished Pods (None when pods may not be listed)."""
        from bf_jupyter.kubeapi import KubeApiError

        if self._kube is None:
            raise BackendUnavailable("No Kubernetes API is configured for the kubernetes backend")
        api = self._kube()
        nodes = api.list("Node")
        pods: list[Json] | None = None
        try:
            pods = api.list("Pod", field_selector=_UNFINISHED)
        except KubeApiError as error:
            if error.status != 403:
                raise
            # allowed to see nodes but not every namespace's pods: say less, not wrong
        return nodes, pods

    def _dra_objects(self) -> tuple[list[Json], list[Json] | None]:
        """DRA's ResourceSlices and every namespace's ResourceClaims (None when they may not be
        listed: the DRA pool then says so); none unless a dra backend is configured
        (``gpu_backends``), or where the API is not served."""
        from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable

        # Only where configured: listing cluster-wide needs a ClusterRole most servers lack.
        wanted = [get_backend(name) for name in self.gpu_backends]
        if self._kube is None or not any(isinstance(b, DraBackend) for b in wanted):
            return [], None
        api = self._kube()
        try:
            slices = api.list("ResourceSlice")
        except (KubeApiError, KubeUnavailable):
            return [], None
        try:
            claims: list[Json] | None = api.list("ResourceClaim")
        except (KubeApiError, KubeUnavailable):
            claims = None  # devices without their use: say less, not wrong
        return slices, claims


def _local_listing() -> PoolListing:
    try:
        return resolve_client().list_gpus(timeout=10)
    except BitfusionClientError as error:
        raise BackendUnavailable(f"The Bitfusion pool is unavailable: {error}") from None


def listing_to_json(listing: PoolListing) -> list[Json]:
    """Servers and their GPUs, with used/free fractions of memory, as the sidebar draws them."""
    servers = []
    for server in listing.servers:
        gpus = [
            {
                "index": gpu.index,
                "name": gpu.name,
                "memory_mib": gpu.memory_total_mib,
                "free_mib": gpu.memory_free_mib,
                "used_fraction": round(gpu.used_fraction, 4),
                "free_fraction": round(1 - gpu.used_fraction, 4),
            }
            for gpu in server.gpus
        ]
        servers.append(
            {
                "index": server.index,
                "address": server.address,
                "status": server.status,
                "gpus": gpus,
                "leases": len(server.leases),
            }
        )
    return servers


def _pool_json(
    backend: Backend, listing: PoolListing | None, *, nodes: list[Json], warnings: list[str]
) -> Json:
    servers = listing_to_json(listing) if listing is not None else []
    gpus = [gpu for server in servers for gpu in server["gpus"]]
    return {
        "backend": backend,
        "simulated": bool(listing and listing.simulated),
        "servers": servers,
        "nodes": nodes,
        "total_gpus": len(gpus),
        "free_fraction": round(sum(g["free_fraction"] for g in gpus) / len(gpus), 4) if gpus else 0,
        "largest_server_gpus": listing.largest_server_gpus if listing else None,
        "gpu_memory_mib": listing.gpu_memory_mib if listing else None,
        "warnings": warnings,
        "read_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
