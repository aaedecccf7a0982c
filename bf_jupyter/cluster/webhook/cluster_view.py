"""The cluster facts validation asks for, read from the Kubernetes API through ``bf_jupyter.kubeapi``.

Three reads, each covered by the webhook's least-privilege ClusterRole: ResourceQuotas of the pod's
namespace (list), nodes (list; the result is kept for a few seconds because it is the same for every
pod and costly in large clusters) and the token Secret (get, by that one name; only the names of its
data keys leave this module). Any failure becomes ``FactUnavailable`` so the check is skipped with a
warning. Calls block: the server runs them off its event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bf_jupyter.cluster.webhook.validate import FactUnavailable, QuotaLeft
from bf_jupyter.contract import QUOTA_RESOURCE
from bf_jupyter.quantity import QuantityError, parse_quantity

if TYPE_CHECKING:
    from bf_jupyter.kubeapi import KubeApi

__all__ = ["KubeClusterFacts", "NoClusterFacts"]

QUOTA_KEY = f"requests.{QUOTA_RESOURCE}"


class NoClusterFacts:
    """Stand-alone mode: no API is configured, so every cluster check is skipped with ``reason``."""

    blocking = False

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def quotas(self, namespace: str) -> tuple[QuotaLeft, ...]:
        raise FactUnavailable(self.reason)

    def largest_node_units(self) -> int:
        raise FactUnavailable(self.reason)

    def token_secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        raise FactUnavailable(self.reason)


class KubeClusterFacts:
    """Facts from a live API server. Safe to share between threads: the only state kept is an
    immutable (time, value) pair for the node capacity, replaced whole."""

    blocking = True

    def __init__(
        self,
        api: KubeApi,
        *,
        node_cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._node_cache_seconds = node_cache_seconds
        self._clock = clock
        self._nodes: tuple[float, int] | None = None

    def quotas(self, namespace: str) -> tuple[QuotaLeft, ...]:
        items = self._read(lambda: self._api.list("ResourceQuota", namespace))
        found = []
        for quota in items:
            spec = quota.get("spec") or {}
            status = quota.get("status") or {}
            hard = _units((spec.get("hard") or {}).get(QUOTA_KEY))
            if hard is None:
                continue
            used = _units((status.get("used") or {}).get(QUOTA_KEY)) or 0
            found.append(QuotaLeft(str((quota.get("metadata") or {}).get("name", "")), hard, used))
        return tuple(found)

    def largest_node_units(self) -> int:
        cached = self._nodes
        now = self._clock()
        if cached is not None and now - cached[0] < self._node_cache_seconds:
            return cached[1]
        nodes = self._read(lambda: self._api.list("Node"))
        largest = max(
            (
                _units(((node.get("status") or {}).get("allocatable") or {}).get(QUOTA_RESOURCE))
                or 0
                for node in nodes
                if not (node.get("spec") or {}).get("unschedulable")
            ),
            default=0,
        )
        self._nodes = (now, largest)
        return largest

    def token_secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        from bf_jupyter.kubeapi import KubeApiError

        try:
            secret = self._read(lambda: self._api.get("Secret", name, namespace), not_found=True)
        except KubeApiError:
            return None
        return frozenset(secret.get("data") or {})

    @staticmethod
    def _read(call: Callable[[], Any], *, not_found: bool = False) -> Any:
        """Run one API call; failures become ``FactUnavailable`` (a 404 is re-raised when asked)."""
        from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable

        try:
            return call()
        except KubeApiError as error:
            if not_found and error.not_found:
                raise
            raise FactUnavailable(f"the Kubernetes API refused ({error.reason}: {error})") from None
        except KubeUnavailable as error:
            raise FactUnavailable(str(error)) from None


def _units(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(parse_quantity(value if isinstance(value, str | int) else str(value)))
    except QuantityError:
        return None
