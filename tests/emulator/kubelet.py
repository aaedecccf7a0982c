"""The process-kubelet of one node: runs the pods bound to it (see ``pod_worker``), each on its own
127.x.y.z address, serves their logs to the API, stops them when they are deleted, and removes
what it made once a pod is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.emulator import errors
from tests.emulator.events import EventRecorder
from tests.emulator.kinds import ResourceType, resource_for_kind
from tests.emulator.pod_worker import Allocate, Backoff, PodWorker
from tests.emulator.sandbox import PodSandbox

if TYPE_CHECKING:
    from tests.emulator.container_logs import ContainerLog
    from tests.emulator.device_plugins import DeviceManager
    from tests.emulator.registry import Registry

Obj = dict[str, Any]
_log = logging.getLogger(__name__)


class PodAddresses:
    """127.x.y.z addresses, one per live pod, shared by every node's kubelet. 127.0.0.0/8 is all
    loopback on Linux, so each pod binds its own address from 127.1.0.1 on."""

    def __init__(self) -> None:
        self._next = 0
        self._free: list[str] = []

    def take(self) -> str:
        if self._free:
            return self._free.pop(0)
        index, self._next = self._next, self._next + 1
        return f"127.{1 + index // (256 * 254)}.{(index // 254) % 256}.{index % 254 + 1}"

    def give_back(self, address: str) -> None:
        self._free.append(address)


class Kubelet:
    def __init__(
        self,
        registry: Registry,
        node_name: str,
        root: Path,
        *,
        addresses: PodAddresses,
        allocate: Allocate | None = None,
        backoff: Backoff | None = None,
        node_env: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.store = registry.store
        self.node_name = node_name
        self.root = root
        self.allocate = allocate
        self.devices: DeviceManager | None = None
        self.node_env = dict(node_env or {})
        # per-namespace additions (tests give each namespace its own bitfusion-sim state)
        self.namespace_env: dict[str, dict[str, str]] = {}
        self.backoff = backoff or Backoff()
        self.events = EventRecorder(self.store, "kubelet", node_name)
        self.workers: dict[str, PodWorker] = {}
        self.addresses = addresses
        self._pods = resource_for_kind("Pod")
        self._tasks: set[asyncio.Task[None]] = set()
        self.store.subscribe(self._on_change)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_change(self, event_type: str, resource: ResourceType, pod: Obj) -> None:
        if resource.kind != "Pod" or (pod.get("spec") or {}).get("nodeName") != self.node_name:
            return
        meta = pod["metadata"]
        worker = self.workers.get(meta["uid"])
        if event_type == "DELETED":
            if worker is not None:
                self._spawn(
                    self._forget(worker, grace=float(meta.get("deletionGracePeriodSeconds") or 0))
                )
            return
        if worker is None:
            if meta.get("deletionTimestamp"):
                self._spawn(self._finish(meta["namespace"], meta["name"]))
            elif (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                self._start(pod)
            return
        worker.update_pod(pod)
        if meta.get("deletionTimestamp") and not worker.stopping.is_set():
            self._spawn(
                self._stop_and_finish(worker, float(meta.get("deletionGracePeriodSeconds") or 0))
            )

    def _start(self, pod: Obj) -> None:
        sandbox = PodSandbox(self.root, pod, self.store)
        worker = PodWorker(
            pod,
            sandbox=sandbox,
            pod_ip=self.addresses.take(),
            events=self.events,
            write_status=self._write_status,
            allocate=self._allocate,
            backoff=self.backoff,
            node_env={**self.node_env, **self.namespace_env.get(pod["metadata"]["namespace"], {})},
        )
        self.workers[worker.uid] = worker
        worker.start()

    async def _allocate(self, pod: Obj, container: Obj) -> dict[str, str]:
        env = await self.allocate(pod, container) if self.allocate else {}
        if self.devices is not None:
            env.update(await self.devices.allocate(pod, container))
        return env

    def _write_status(self, uid: str, status: Obj) -> bool:
        """Write a worker's status onto the stored pod (if it is still that pod)."""
        worker = self.workers.get(uid)
        if worker is None:
            return False
        meta = worker.pod["metadata"]
        current = self.store.find(self._pods, meta["namespace"], meta["name"])
        if current is None or current["metadata"]["uid"] != uid:
            return False
        merged = dict(current.get("status") or {})
        scheduled = [c for c in merged.get("conditions") or [] if c.get("type") == "PodScheduled"]
        merged.update(status)
        merged["conditions"] = scheduled + status["conditions"]
        if merged == current.get("status"):
            return True
        current["status"] = merged
        self.registry.update_status_now(self._pods, current)
        return True

    async def _stop_and_finish(self, worker: PodWorker, grace: float) -> None:
        await worker.terminate(grace)
        meta = worker.pod["metadata"]
        await self._finish(meta["namespace"], meta["name"])

    async def _finish(self, namespace: str, name: str) -> None:
        self.registry.finish_pod_deletion(namespace, name)

    async def _forget(self, worker: PodWorker, grace: float) -> None:
        """The pod is gone from the API: stop what still runs and remove its directory."""
        await worker.terminate(grace)
        if self.workers.pop(worker.uid, None) is not None:
            self.addresses.give_back(worker.pod_ip)
        if self.devices is not None:
            self.devices.release(worker.pod)
        shutil.rmtree(worker.sandbox.dir, ignore_errors=True)

    # ----- logs -----------------------------------------------------------------------------------

    def log_stream(self, pod: Obj, options: dict[str, str]) -> AsyncIterator[bytes]:
        """The ``pods/log`` subresource; raises the API's 400s for containers that have no log."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        worker = self.workers.get(meta["uid"])
        names = [c["name"] for c in spec.get("containers") or []]
        init_names = [c["name"] for c in spec.get("initContainers") or []]
        container = options.get("container") or ""
        if not container:
            if len(names) != 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {meta['name']}, choose one of: [{' '.join(names)}]"
                    + (
                        f" or one of the init containers: [{' '.join(init_names)}]"
                        if init_names
                        else ""
                    )
                )
            container = names[0]
        if container not in names and container not in init_names:
            raise errors.bad_request(f"container {container} is not valid for pod {meta['name']}")
        runs: list[ContainerLog] = worker.logs.get(container, []) if worker else []
        previous = options.get("previous") in ("true", "1")
        if previous:
            if len(runs) < 2:
                raise errors.bad_request(
                    f'previous terminated container "{container}" in pod "{meta["name"]}" not found'
                )
            log = runs[-2]
        elif runs:
            log = runs[-1]
        else:
            statuses = (pod.get("status") or {}).get("containerStatuses", []) + (
                pod.get("status") or {}
            ).get("initContainerStatuses", [])
            state = next((s.get("state") or {} for s in statuses if s.get("name") == container), {})
            reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
            if reason in ("ErrImagePull", "ImagePullBackOff"):
                raise errors.bad_request(
                    f'container "{container}" in pod "{meta["name"]}" is waiting to start: trying and failing to pull image'
                )
            raise errors.bad_request(
                f'container "{container}" in pod "{meta["name"]}" is waiting to start: {reason}'
            )
        tail = options.get("tailLines")
        limit = options.get("limitBytes")
        return log.read(
            follow=options.get("follow") in ("true", "1"),
            tail=int(tail) if tail else None,
            timestamps=options.get("timestamps") in ("true", "1"),
            limit_bytes=int(limit) if limit else None,
        )

    # ----- shutdown -------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every pod's processes (SIGTERM, then SIGKILL after a second) and remove their dirs."""
        await asyncio.gather(
            *(w.terminate(1.0) for w in list(self.workers.values())), return_exceptions=True
        )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for worker in self.workers.values():
            shutil.rmtree(worker.sandbox.dir, ignore_errors=True)
        self.workers.clear()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)
