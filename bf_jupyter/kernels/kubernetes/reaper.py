"""No orphaned kernel pods: ownership by the server's pod, and reaping what a dead server left.

Two mechanisms, because a notebook server dies in two ways. When it runs in a pod and that pod is
deleted, Kubernetes' garbage collector deletes kernel pods owned by it (the ownerReference set at
creation; owner and kernels must share a namespace). When the server process restarts (same pod,
or not in a pod at all), the first launch of the new process deletes the kernel pods and Secrets
labelled for this server whose kernels it does not know (Enterprise Gateway leaves them running).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, ClassVar

from bf_jupyter.contract import LABEL_COMPONENT, LABEL_KERNEL_ID, LABEL_NAME, LABEL_SERVER
from bf_jupyter.kubeapi import KubeApi, KubeApiError
from bf_jupyter.kubenames import label_value

__all__ = ["KernelReaper", "server_pod_owner"]

log = logging.getLogger(__name__)


class KernelReaper:
    """Deletes one server's kernel pods and Secrets whose kernel ids it no longer knows."""

    # Kernels this process launched or reattached (the MultiKernelManager may not list them yet).
    _known: ClassVar[set[str]] = set()
    # (namespace, server id) pairs this process has reaped: once per server process is enough.
    _reaped: ClassVar[set[tuple[str, str]]] = set()

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        server_id: str,
        kinds: tuple[str, ...] = ("Pod", "Secret"),
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.kinds = kinds
        self.selector = ",".join(
            [
                f"{LABEL_NAME}=bf-jupyter",
                f"{LABEL_COMPONENT}=kernel",
                f"{LABEL_SERVER}={label_value(server_id)}",
            ]
        )

    @classmethod
    def remember(cls, kernel_id: str) -> None:
        cls._known.add(label_value(kernel_id))

    @classmethod
    def forget(cls, kernel_id: str) -> None:
        cls._known.discard(label_value(kernel_id))

    @classmethod
    def start_over(cls) -> None:
        """Forget what this process launched and reaped, as a freshly started server would."""
        cls._known.clear()
        cls._reaped.clear()

    def first_time(self) -> bool:
        """True once per process for this namespace and server (the reaping happens then)."""
        marker = (self.namespace, self.selector)
        if marker in self._reaped:
            return False
        self._reaped.add(marker)
        return True

    @classmethod
    def known_kernel_ids(cls, kernel_manager: Any) -> set[str]:
        """Kernel ids this server knows: its MultiKernelManager's (the kernel manager's parent)
        and those launched or reattached in this process."""
        known = set(cls._known)
        multi = getattr(kernel_manager, "parent", None)
        list_ids = getattr(multi, "list_kernel_ids", None)
        if callable(list_ids):
            known.update(label_value(str(kernel_id)) for kernel_id in list_ids())
        return known

    def reap(self, known_kernel_ids: Iterable[str]) -> list[str]:
        """Delete the orphans; return their names. Blocking. API errors are logged, not raised:
        reaping must never stop a launch."""
        known = {label_value(k) for k in known_kernel_ids}
        removed: list[str] = []
        for kind in self.kinds:
            try:
                objects = self.api.list(kind, self.namespace, label_selector=self.selector)
            except KubeApiError as error:
                log.warning("cannot list kernel %ss to reap: %s", kind.lower(), error)
                continue
            for obj in objects:
                metadata = obj.get("metadata") or {}
                kernel_id = (metadata.get("labels") or {}).get(LABEL_KERNEL_ID, "")
                if kernel_id in known:
                    continue
                name = str(metadata.get("name"))
                try:
                    if self.api.delete(kind, name, self.namespace):
                        removed.append(f"{kind.lower()}/{name}")
                except KubeApiError as error:
                    log.warning("cannot delete orphaned %s/%s: %s", kind.lower(), name, error)
        return removed


async def server_pod_owner(api: KubeApi, namespace: str, pod_name: str) -> dict[str, Any] | None:
    """The ownerReference naming the server's pod, when it runs in one in the kernels' namespace.

    None when there is no such pod: an owner in another namespace would be treated as missing by
    the garbage collector, which would then delete the kernel pod.
    """
    if not pod_name:
        return None
    cache_key = (id(api), namespace, pod_name)
    if cache_key in _OWNERS:
        return _OWNERS[cache_key]
    try:
        pod = await asyncio.to_thread(api.get, "Pod", pod_name, namespace)
    except KubeApiError as error:
        if not error.not_found:
            raise
        log.info("server pod %s/%s not found: kernel pods get no owner", namespace, pod_name)
        _OWNERS[cache_key] = None
        return None
    metadata = pod.get("metadata") or {}
    owner = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": pod_name,
        "uid": metadata.get("uid"),
        "blockOwnerDeletion": False,
    }
    _OWNERS[cache_key] = owner
    return owner


_OWNERS: dict[tuple[int, str, str], dict[str, Any] | None] = {}
