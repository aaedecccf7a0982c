"""One pod's life on the process-kubelet: image "pulls", volumes, init containers in order, then
the app containers as local process groups, restarts with back-off, status and events like a
kubelet's, and graceful termination (SIGTERM to each process group, the grace period, SIGKILL).

Status goes to the API server from one writer task per pod: ``publish()`` only marks the status
changed, the writer sends the newest one, so writes stay in order and bursts coalesce.

The container runtime is this machine: the image is ignored, except that an image whose name ends
in ``:missing`` cannot be pulled (ErrImagePull, then ImagePullBackOff, retried with back-off).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import secrets
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.cluster.kubelet.container_logs import ContainerLog
from tests.cluster.kubelet.device_plugins import Allocation, DeviceAllocationError
from tests.cluster.kubelet.node_runtime import POD_IP_ENV
from tests.cluster.kubelet.pod_status import (
    HOST_IP,
    conditions,
    new_container_status,
    now_rfc3339,
    pod_phase,
    pod_status,
)
from tests.cluster.kubelet.probes import wait_until_ready
from tests.cluster.kubelet.sandbox import ContainerConfigError, MountError, PodSandbox

if TYPE_CHECKING:
    from tests.cluster.kubelet.events import EventRecorder

Obj = dict[str, Any]
MISSING_IMAGE_SUFFIX = ":missing"
Allocate = Callable[[Obj, Obj], Awaitable[Allocation]]
WriteStatus = Callable[[Obj, Obj], Awaitable[None]]  # (pod, status)
_log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Kubelet's doubling back-off, short so tests see CrashLoopBackOff in well under a second."""

    base: float = 0.2
    cap: float = 2.0

    def delay(self, attempt: int) -> float:
        return min(self.base * 2.0 ** max(attempt - 1, 0), self.cap)


class PodWorker:
    def __init__(
        self,
        pod: Obj,
        *,
        sandbox: PodSandbox,
        pod_ip: str,
        events: EventRecorder,
        write_status: WriteStatus,
        allocate: Allocate | None,
        backoff: Backoff,
        node_env: Mapping[str, str] | None = None,
    ) -> None:
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        self.sandbox = sandbox
        self.pod_ip = pod_ip
        self.events = events
        self._write = write_status
        self._allocate = allocate
        self.backoff = backoff
        self.node_env = dict(node_env or {})
        self.logs: dict[str, list[ContainerLog]] = {}
        self.statuses: dict[str, Obj] = {}
        self.init_statuses: dict[str, Obj] = {}
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.initialized = False
        self.failed = False
        self._conditions: list[Obj] = []
        self.started_at = now_rfc3339()
        self.sandbox_ready = False
        self.task: asyncio.Task[None] | None = None
        self._status: Obj | None = None  # the newest status not yet written
        self._status_changed = asyncio.Event()
        self._status_written = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    @property
    def spec(self) -> Obj:
        return self.pod.get("spec") or {}

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_statuses())
        self.task = loop.create_task(self._run())
        self.task.add_done_callback(self._report_crash)

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _log.error("pod %s: worker failed", self.uid, exc_info=task.exception())

    # ----- the pod's life -------------------------------------------------------------------------

    async def _run(self) -> None:
        for section, table in (
            ("initContainers", self.init_statuses),
            ("containers", self.statuses),
        ):
            for container in self.spec.get(section) or []:
                reason = (
                    "PodInitializing"
                    if section == "containers" and self.spec.get("initContainers")
                    else "ContainerCreating"
                )
                table[container["name"]] = new_container_status(
                    container, {"waiting": {"reason": reason}}
                )
        self.publish()
        if not await self._mount_volumes():
            return
        self.sandbox_ready = True
        for container in self.spec.get("initContainers") or []:
            if not await self._run_init(container):
                return
        self.initialized = True
        self.publish()
        await asyncio.gather(*(self._run_app(c) for c in self.spec.get("containers") or []))

    async def _mount_volumes(self) -> bool:
        attempt = 0
        while not self.stopping.is_set():
            try:
                await self.sandbox.setup_volumes()
                return True
            except MountError as error:
                self.events.record(self.pod, "Warning", "FailedMount", str(error))
            attempt += 1
            if await self._sleep(self.backoff.delay(attempt)):
                return False
        return False

    async def _run_init(self, container: Obj) -> bool:
        attempt = 0
        while not self.stopping.is_set():
            code = await self._run_once(container, self.init_statuses, "initContainers", attempt)
            if code == 0:
                return True
            if code is None or self.spec.get("restartPolicy") == "Never":
                if code is not None:
                    self.failed = True
                    self.publish()
                return False
            attempt += 1
            if not await self._back_off(container, self.init_statuses, "initContainers", attempt):
                return False
        return False

    async def _run_app(self, container: Obj) -> None:
        policy = self.spec.get("restartPolicy", "Always")
        attempt = 0
        while not self.stopping.is_set():
            code = await self._run_once(container, self.statuses, "containers", attempt)
            if code is None or policy == "Never" or (policy == "OnFailure" and code == 0):
                return
            attempt += 1
            if not await self._back_off(container, self.statuses, "containers", attempt):
                return

    async def _back_off(
        self, container: Obj, table: dict[str, Obj], section: str, attempt: int
    ) -> bool:
        name, delay = container["name"], self.backoff.delay(attempt)
        meta = self.pod["metadata"]
        message = f"back-off {delay:g}s restarting failed container={name} pod={meta['name']}_{meta['namespace']}({self.uid})"
        if "terminated" in table[name]["state"]:  # the run that ended becomes the last state
            table[name]["lastState"] = {"terminated": dict(table[name]["state"]["terminated"])}
        table[name]["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        table[name]["ready"] = False
        self.publish()
        self.events.record(
            self.pod,
            "Warning",
            "BackOff",
            f"Back-off restarting failed container {name} in pod {meta['name']}_{meta['namespace']}({self.uid})",
            field_path=f"spec.{section}{{{name}}}",
        )
        if await self._sleep(delay):
            return False
        table[name]["restartCount"] += 1
        return True

    async def _run_once(
        self, container: Obj, table: dict[str, Obj], section: str, attempt: int
    ) -> int | None:
        """One run of a container: its exit code, or None when the pod is stopping first."""
        name = container["name"]
        where = f"spec.{section}{{{name}}}"
        if not await self._pull(container, table, where):
            return None
        try:
            allocation = (
                await self._allocate(self.pod, container) if self._allocate else Allocation()
            )
            plan = await self.sandbox.plan(
                container,
                self._current_pod(),
                {**self.node_env, **allocation.env},
                allocation.mounts,
            )
        except (ContainerConfigError, DeviceAllocationError) as error:
            reason = (
                "CreateContainerConfigError"
                if isinstance(error, ContainerConfigError)
                else "UnexpectedAdmissionError"
            )
            table[name]["state"] = {"waiting": {"reason": reason, "message": str(error)}}
            self.publish()
            self.events.record(self.pod, "Warning", "Failed", f"Error: {error}", field_path=where)
            return (
                None
                if await self._sleep(self.backoff.delay(attempt + 1))
                else await self._run_once(container, table, section, attempt + 1)
            )
        log = ContainerLog()
        self.logs.setdefault(name, []).append(log)
        self.events.record(
            self.pod, "Normal", "Created", f"Created container: {name}", field_path=where
        )
        started = now_rfc3339()
        container_id = f"process://{secrets.token_hex(16)}"
        try:
            process = await asyncio.create_subprocess_exec(
                *plan.argv,
                env={**plan.env, POD_IP_ENV: self.pod_ip},
                cwd=str(plan.cwd),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            message = f'exec: "{plan.argv[0]}": {error.strerror or error}'
            log.close()
            self._terminated(
                table,
                name,
                code=128,
                reason="StartError",
                started=started,
                container_id=container_id,
                message=message,
            )
            self.events.record(self.pod, "Warning", "Failed", f"Error: {message}", field_path=where)
            return 128
        self.processes[name] = process
        if self.stopping.is_set():  # the pod began stopping while this container was starting
            kill_group(process.pid, signal.SIGKILL)
        probe = container.get("readinessProbe") if section == "containers" else None
        table[name].update(
            state={"running": {"startedAt": started}},
            ready=probe is None,
            started=True,
            containerID=container_id,
        )
        self.publish()
        readiness = (
            asyncio.get_running_loop().create_task(self._become_ready(probe, container, table))
            if probe is not None
            else None
        )
        self.events.record(
            self.pod, "Normal", "Started", f"Started container {name}", field_path=where
        )
        await self._pump(process, log)
        code = await process.wait()
        if readiness is not None:
            readiness.cancel()
        self.processes.pop(name, None)
        kill_group(
            process.pid, signal.SIGKILL
        )  # a container's other processes die with its main one
        log.close()
        reason = "Completed" if code == 0 else "Error"
        self._terminated(
            table,
            name,
            code=128 - code if code < 0 else code,
            reason=reason,
            started=started,
            container_id=container_id,
        )
        return 128 - code if code < 0 else code

    async def _become_ready(self, probe: Obj, container: Obj, table: dict[str, Obj]) -> None:
        await wait_until_ready(probe, self.pod_ip, container)
        status = table.get(container["name"]) or {}
        if "running" in (status.get("state") or {}):
            status["ready"] = True
            self.publish()

    async def _pump(self, process: asyncio.subprocess.Process, log: ContainerLog) -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            log.append(chunk)

    def _terminated(
        self,
        table: dict[str, Obj],
        name: str,
        *,
        code: int,
        reason: str,
        started: str,
        container_id: str,
        message: str = "",
    ) -> None:
        state: Obj = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": now_rfc3339(),
            "containerID": container_id,
        }
        if message:
            state["message"] = message
        if code > 128:
            state["signal"] = code - 128
        status = table[name]
        status.update(state={"terminated": state}, ready=False, started=False)
        self.publish()

    async def _pull(self, container: Obj, table: dict[str, Obj], where: str) -> bool:
        image = str(container.get("image", ""))
        name = container["name"]
        attempt = 0
        while image.endswith(MISSING_IMAGE_SUFFIX):
            self.events.record(
                self.pod, "Normal", "Pulling", f'Pulling image "{image}"', field_path=where
            )
            why = f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": not found'
            self.events.record(
                self.pod,
                "Warning",
                "Failed",
                f'Failed to pull image "{image}": rpc error: code = NotFound desc = {why}',
                field_path=where,
            )
            self.events.record(
                self.pod, "Warning", "Failed", "Error: ErrImagePull", field_path=where
            )
            table[name]["state"] = {
                "waiting": {
                    "reason": "ErrImagePull",
                    "message": f"rpc error: code = NotFound desc = {why}",
                }
            }
            self.publish()
            attempt += 1
            if await self._sleep(self.backoff.delay(attempt) / 2):
                return False
            self.events.record(
                self.pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', field_path=where
            )
            self.events.record(
                self.pod, "Warning", "Failed", "Error: ImagePullBackOff", field_path=where
            )
            table[name]["state"] = {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{image}"',
                }
            }
            self.publish()
            if await self._sleep(self.backoff.delay(attempt)):
                return False
        if self.stopping.is_set():
            return False
        if not table[name].get("imageID"):
            self.events.record(
                self.pod,
                "Normal",
                "Pulled",
                f'Container image "{image}" already present on machine',
                field_path=where,
            )
            table[name]["imageID"] = f"process://{image}"
        return True

    async def _sleep(self, seconds: float) -> bool:
        """Wait; True when the pod began stopping meanwhile."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return self.stopping.is_set()

    # ----- termination ----------------------------------------------------------------------------

    async def terminate(self, grace: float) -> None:
        """SIGTERM every container's process group, SIGKILL what is left after ``grace``."""
        self.stopping.set()
        for name, process in list(self.processes.items()):
            section = "containers" if name in self.statuses else "initContainers"
            self.events.record(
                self.pod,
                "Normal",
                "Killing",
                f"Stopping container {name}",
                field_path=f"spec.{section}{{{name}}}",
            )
            kill_group(process.pid, signal.SIGTERM)
        running = [p.wait() for p in self.processes.values()]
        if running:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*running), grace)
        for process in list(self.processes.values()):
            kill_group(process.pid, signal.SIGKILL)
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self.task, 10)
        for process in list(self.processes.values()):  # started meanwhile: never outlive the pod
            kill_group(process.pid, signal.SIGKILL)

    async def flush_status(self, timeout: float = 10) -> None:
        """Wait until the newest status is written (or ``timeout``)."""
        if self._writer is None or self._writer.done():
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._flushed(), timeout)

    async def _flushed(self) -> None:
        while self._status is not None or self._status_changed.is_set():
            self._status_written.clear()
            await self._status_written.wait()

    async def close(self) -> None:
        """Stop the status writer (after ``terminate``); statuses not written are dropped."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    # ----- status ---------------------------------------------------------------------------------

    def _current_pod(self) -> Obj:
        """The pod as the Downward API sees it at container start (its IPs included)."""
        pod = copy.deepcopy(self.pod)
        pod.setdefault("status", {}).update(
            podIP=self.pod_ip,
            podIPs=[{"ip": self.pod_ip}],
            hostIP=HOST_IP,
            hostIPs=[{"ip": HOST_IP}],
        )
        return pod

    def update_pod(self, pod: Obj) -> None:
        """Metadata may change while the pod runs (labels, annotations); the spec cannot."""
        self.pod = pod

    def phase(self) -> str:
        return pod_phase(
            failed=self.failed,
            initialized=self.initialized,
            statuses=self.statuses.values(),
            restart_policy=self.spec.get("restartPolicy", "Always"),
        )

    def publish(self) -> None:
        phase = self.phase()
        ready = all(s.get("ready") for s in self.statuses.values()) and phase == "Running"
        wanted = {
            "PodReadyToStartContainers": self.sandbox_ready,
            "Initialized": self.initialized,
            "Ready": ready,
            "ContainersReady": ready,
        }
        self._conditions = conditions(self._conditions, wanted)
        status = pod_status(
            phase=phase,
            pod_ip=self.pod_ip,
            started_at=self.started_at,
            condition_list=self._conditions,
            statuses=self.statuses.values(),
            init_statuses=self.init_statuses.values(),
        )
        self._status = status
        self._status_changed.set()

    async def _write_statuses(self) -> None:
        while True:
            await self._status_changed.wait()
            self._status_changed.clear()
            status, self._status = self._status, None
            if status is not None:
                try:
                    await self._write(self.pod, status)
                except Exception as error:  # the API is away for a moment: retry unless superseded
                    _log.warning("status of pod %s not written: %s", self.uid, error)
                    if self._status is None:
                        self._status = status
                        self._status_changed.set()
                    await asyncio.sleep(0.5)
            self._status_written.set()


def kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
