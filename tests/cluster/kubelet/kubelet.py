"""``ProcessKubelet``: one node of the test cluster, run against a real kube-apiserver.

It registers its Node (capacity, InternalIP 127.0.0.1, the port of its kubelet API, Ready) and
renews the node's Lease; watches the pods bound to it and runs each (``pod_worker``) as local process
groups on its own 127.x.y.z address; writes their status and events; serves their logs through the
kubelet API the apiserver proxies to (``kubelet_server``); hosts the device-plugin registration
socket (``device_plugins``); and, when a pod is deleted, stops its processes (SIGTERM, the grace
period, SIGKILL) and removes the pod object, as a kubelet does.

Everything runs on an event loop of its own, in a daemon thread; ``start()``/``stop()`` are called
from ordinary (blocking) test code. ``stop()`` ends every process group it started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import shutil
import tempfile
import threading
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tests.cluster.kubelet.device_plugins import Allocation, DeviceAllocationError, DeviceManager
from tests.cluster.kubelet.dra_driver import ClaimNotPrepared, DraDriver, FakeGpu
from tests.cluster.kubelet.events import EventRecorder
from tests.cluster.kubelet.kubelet_server import KubeletServer, LogUnavailable
from tests.cluster.kubelet.node_api import NodeApi
from tests.cluster.kubelet.node_runtime import NodeRuntime
from tests.cluster.kubelet.pod_status import HOST_IP, now_rfc3339
from tests.cluster.kubelet.pod_worker import Backoff, PodWorker
from tests.cluster.kubelet.sandbox import PodSandbox

if TYPE_CHECKING:
    from tests.cluster.kubelet.container_logs import ContainerLog

Obj = dict[str, Any]
T = TypeVar("T")
DEFAULT_CAPACITY = {"cpu": "8", "memory": "32Gi", "pods": "110"}
KUBELET_VERSION = "v1.37.2"
LEASE_SECONDS = 40
NODE_CONDITIONS = [  # (type, status, reason, message) as a healthy kubelet reports them
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
]  # fmt: skip
_MAX_SOCKET_DIR = 80  # unix socket paths are limited to 107 bytes
_log = logging.getLogger(__name__)


class ControlPlaneAccess(Protocol):
    """What a kubelet needs of the control plane (``tests.cluster.control_plane.ControlPlane``)."""

    @property
    def kubelet_client_ca_pem(self) -> bytes: ...

    def node_kubeconfig(self, node_name: str) -> Path: ...

    def issue_serving_cert(self, hosts: list[str]) -> tuple[bytes, bytes]: ...

    @property
    def server(self) -> str: ...

    @property
    def ca_file(self) -> Path: ...


class PodAddresses:
    """127.x.y.z addresses, one per live pod, shared by every kubelet of this process. 127.0.0.0/8 is
    all loopback on Linux, so each pod binds its own address, from 127.<base>.0.1 on with a base in
    1–150 drawn per process (Services' ranges are 127.200–254.0.0/16)."""

    def __init__(self) -> None:
        self._next = 0
        self._free: list[str] = []
        self._lock = threading.Lock()
        # drawn per test process so that two sessions on one machine do not share addresses
        self._base = random.randint(1, 150)

    def take(self) -> str:
        with self._lock:
            if self._free:
                return self._free.pop(0)
            index, self._next = self._next, self._next + 1
        return f"127.{self._base + index // (256 * 254)}.{(index // 254) % 256}.{index % 254 + 1}"

    def give_back(self, address: str) -> None:
        with self._lock:
            self._free.append(address)


SHARED_ADDRESSES = PodAddresses()


class ProcessKubelet:
    """A node named ``node_name`` whose pods run under ``root``. ``env`` is given to every container
    (before the pod's own env); ``set_namespace_env`` adds more per namespace. With
    ``device_plugins`` the registration socket is served in ``plugin_dir``."""

    def __init__(
        self,
        control_plane: ControlPlaneAccess,
        node_name: str = "node-1",
        root: Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        device_plugins: bool = False,
        capacity: Mapping[str, str] | None = None,
        addresses: PodAddresses | None = None,
        backoff: Backoff | None = None,
        lease_renew_seconds: float = 10,
        image_files: Mapping[str, Mapping[str, Path]] | None = None,
        cluster_dns: Path | None = None,
        taints: list[Obj] | None = None,
        dra_gpus: Sequence[FakeGpu] = (),
    ) -> None:
        self.control_plane = control_plane
        self.node_name = node_name
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix=f"bf-{node_name}-"))
        self.pods_dir = self.root / "pods"
        self.env = dict(env or {})
        self.namespace_env: dict[str, dict[str, str]] = {}
        self.capacity = dict(capacity or DEFAULT_CAPACITY)
        self.addresses = addresses or SHARED_ADDRESSES
        self.backoff = backoff or Backoff()
        self.lease_renew_seconds = lease_renew_seconds
        self.plugin_dir = self._socket_dir() if device_plugins else None
        self.workers: dict[str, PodWorker] = {}
        self.port = 0
        self.runtime = NodeRuntime(image_files=dict(image_files or {}), cluster_dns=cluster_dns)
        self.host_paths = self.runtime.host_paths  # hostPath → folder here, e.g. device plugins
        self.taints = list(taints or [])
        self.dra_gpus = tuple(dra_gpus)  # published as a DRA driver's ResourceSlice
        self._dra: DraDriver | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"kubelet-{node_name}", daemon=True
        )
        self._api: NodeApi | None = None
        self._events: EventRecorder | None = None
        self._server: KubeletServer | None = None
        self._devices: DeviceManager | None = None
        self._node_uid = ""
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def _socket_dir(self) -> Path:
        wanted = self.root / "device-plugins"
        if len(str(wanted / "kubelet.sock")) <= _MAX_SOCKET_DIR:
            return wanted
        return Path(tempfile.mkdtemp(prefix="bf-dp-"))  # removed by stop()

    # ----- lifecycle (blocking, for test code) ----------------------------------------------------

    def start(self) -> ProcessKubelet:
        """Register the node and serve; returns once the Node is Ready on the API server."""
        self._thread.start()
        try:
            self.call(self._start(), timeout=60)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every pod's processes, the servers and the loop; remove the kubelet's files. The
        Node object stays (as when a real kubelet stops); its Lease expires."""
        if self._thread.is_alive():
            try:
                self.call(self._stop(), timeout=60)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()
        if self.plugin_dir is not None and not self.plugin_dir.is_relative_to(self.root):
            shutil.rmtree(self.plugin_dir, ignore_errors=True)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ProcessKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the kubelet's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def set_namespace_env(self, namespace: str, env: Mapping[str, str]) -> None:
        """Extra env for containers of pods in ``namespace`` started from now on."""
        self.namespace_env[namespace] = dict(env)

    def pod_dir(self, uid: str) -> Path:
        """The directory of a pod (its volumes under ``volumes/<name>``)."""
        return self.pods_dir / uid

    def restart_device_manager(self) -> None:
        """As a kubelet restart does to device plugins: they must register again."""
        if self._devices is not None:
            self.call(self._devices.restart())

    # ----- start and stop (on the loop) -----------------------------------------------------------

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        kubeconfig = self.control_plane.node_kubeconfig(self.node_name)
        self._api = NodeApi(kubeconfig, self.node_name)
        self.runtime.apiserver = self.control_plane.server
        self.runtime.ca_file = self.control_plane.ca_file
        self.runtime.request_token = self._api.request_token
        self._events = EventRecorder(self._api)
        self._events.start()
        cert, key = self.control_plane.issue_serving_cert([HOST_IP, self.node_name])
        self._server = KubeletServer(
            self._find_log,
            cert_pem=cert,
            key_pem=key,
            client_ca_pem=self.control_plane.kubelet_client_ca_pem,
        )
        self.port = self._server.start()
        node = await self._api.register_node(self._node())
        self._node_uid = node["metadata"]["uid"]
        await self._api.renew_lease(self._node_uid, LEASE_SECONDS)
        if self.plugin_dir is not None:
            self._devices = DeviceManager(self.plugin_dir, self._publish_devices)
            await self._devices.start()
        if self.dra_gpus:
            self._dra = DraDriver(self._api, self.node_name, self.dra_gpus)
            await self._dra.publish(self._node_uid)
        self._spawn(self._renew_lease_forever())
        self._spawn(self._watch_pods())

    def _node(self) -> Obj:
        now = now_rfc3339()

        def condition(kind: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
        }
        return {
            "metadata": {"name": self.node_name, "labels": labels},
            "spec": {"taints": self.taints} if self.taints else {},
            "status": {
                "capacity": dict(self.capacity),
                "allocatable": dict(self.capacity),
                "addresses": [
                    {"type": "InternalIP", "address": HOST_IP},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                "conditions": [condition(*fields) for fields in NODE_CONDITIONS],
                "nodeInfo": {
                    "kubeletVersion": KUBELET_VERSION,
                    "containerRuntimeVersion": "process://local",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "this machine",
                    "kernelVersion": "",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kubeProxyVersion": "",
                },
            },
        }

    async def _publish_devices(self, capacity: dict[str, str], allocatable: dict[str, str]) -> None:
        assert self._api is not None
        await self._api.patch_node_status(
            {
                "capacity": {**self.capacity, **capacity},
                "allocatable": {**self.capacity, **allocatable},
            }
        )

    async def _renew_lease_forever(self) -> None:
        assert self._api is not None and self._stopping is not None
        while not self._stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.lease_renew_seconds)
            if self._stopping.is_set():
                return
            try:
                await self._api.renew_lease(self._node_uid, LEASE_SECONDS)
            except Exception as error:
                _log.warning("%s: lease not renewed: %s", self.node_name, error)

    async def _stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        workers = list(self.workers.values())
        await asyncio.gather(*(w.terminate(1.0) for w in workers), return_exceptions=True)
        for worker in workers:
            await worker.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._devices is not None:
            await self._devices.stop()
        if self._dra is not None:
            await self._dra.withdraw()
        if self._server is not None:
            await self._server.stop()
        if self._events is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._events.stop(), 5)
        for worker in workers:
            shutil.rmtree(worker.sandbox.dir, ignore_errors=True)
            self.addresses.give_back(worker.pod_ip)
        self.workers.clear()
        if self._api is not None:
            self._api.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----- pods -----------------------------------------------------------------------------------

    async def _watch_pods(self) -> None:
        assert self._api is not None and self._stopping is not None
        async for event_type, pod in self._api.watch_pods(self._stopping):
            try:
                self._on_pod(event_type, pod)
            except Exception:
                _log.exception("%s: pod event not handled", self.node_name)

    def _on_pod(self, event_type: str, pod: Obj) -> None:
        meta = pod["metadata"]
        worker = self.workers.get(meta["uid"])
        grace = float(meta.get("deletionGracePeriodSeconds") or 0)
        if event_type == "DELETED":
            if worker is not None:
                self._spawn(self._forget(worker, grace))
            return
        if worker is None:
            if meta.get("deletionTimestamp"):
                self._spawn(self._remove(meta))
            elif (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                self._start_pod(pod)
            return
        worker.update_pod(pod)
        if meta.get("deletionTimestamp") and not worker.stopping.is_set():
            self._spawn(self._stop_and_remove(worker, grace))

    def _start_pod(self, pod: Obj) -> None:
        assert self._api is not None and self._events is not None
        sandbox = PodSandbox(self.pods_dir, pod, self._api.find, self.runtime)
        worker = PodWorker(
            pod,
            sandbox=sandbox,
            pod_ip=self.addresses.take(),
            events=self._events,
            write_status=self._write_status,
            allocate=self._allocate if self._devices or self._dra else None,
            backoff=self.backoff,
            node_env={**self.env, **self.namespace_env.get(pod["metadata"]["namespace"], {})},
        )
        self.workers[worker.uid] = worker
        worker.start()

    async def _allocate(self, pod: Obj, container: Obj) -> Allocation:
        """Device plugins' allocation, then the DRA claims prepared (their env added)."""
        allocation = await self._devices.allocate(pod, container) if self._devices else Allocation()
        if self._dra is not None:
            try:
                allocation.env.update(await self._dra.prepare(pod, container))
            except ClaimNotPrepared as error:
                raise DeviceAllocationError(str(error)) from None
        return allocation

    async def _write_status(self, pod: Obj, status: Obj) -> None:
        assert self._api is not None
        meta = pod["metadata"]
        await self._api.patch_pod_status(meta["namespace"], meta["name"], meta["uid"], status)

    async def _stop_and_remove(self, worker: PodWorker, grace: float) -> None:
        await worker.terminate(grace)
        await worker.flush_status()
        await self._remove(worker.pod["metadata"])

    async def _remove(self, meta: Obj) -> None:
        assert self._api is not None
        try:
            await self._api.remove_pod(meta["namespace"], meta["name"], meta["uid"])
        except Exception as error:
            _log.warning("%s: pod %s not removed: %s", self.node_name, meta["name"], error)

    async def _forget(self, worker: PodWorker, grace: float) -> None:
        """The pod is gone from the API: stop what still runs and remove its directory."""
        await worker.terminate(grace)
        await worker.close()
        if self.workers.pop(worker.uid, None) is not None:
            self.addresses.give_back(worker.pod_ip)
        if self._devices is not None:
            self._devices.release(worker.pod)
        if self._events is not None:
            self._events.forget(worker.uid)
        shutil.rmtree(worker.sandbox.dir, ignore_errors=True)

    # ----- logs -----------------------------------------------------------------------------------

    def _find_log(self, namespace: str, name: str, container: str, previous: bool) -> ContainerLog:
        """The log the apiserver asks for; ``LogUnavailable`` with the kubelet's words if none."""
        worker = next(
            (
                w
                for w in self.workers.values()
                if w.pod["metadata"]["namespace"] == namespace and w.pod["metadata"]["name"] == name
            ),
            None,
        )
        if worker is None:
            raise LogUnavailable(f'pod "{name}" in namespace "{namespace}" is not found')
        runs = worker.logs.get(container, [])
        if previous:
            if len(runs) < 2:
                raise LogUnavailable(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            return runs[-2]
        if runs:
            return runs[-1]
        status = worker.statuses.get(container) or worker.init_statuses.get(container) or {}
        reason = ((status.get("state") or {}).get("waiting") or {}).get(
            "reason", "ContainerCreating"
        )
        if reason in ("ErrImagePull", "ImagePullBackOff"):
            raise LogUnavailable(
                f'container "{container}" in pod "{name}" is waiting to start: trying and failing to pull image'
            )
        raise LogUnavailable(
            f'container "{container}" in pod "{name}" is waiting to start: {reason}'
        )
