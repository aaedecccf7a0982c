"""The server's GPU watch: reads every GPU kernel's meter each interval and applies idle release.

A local kernel is measured here (its process tree, under the Bitfusion client); a kernel pod
measures itself and answers on its control channel (``kernels.gpu_report``). ``GET kernels`` reads
the last readings, so any number of tabs costs no extra NVML read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bf_jupyter.gpumeter import DEFAULT_INTERVAL, GpuMeter, GpuReading, NvmlProbe
from bf_jupyter.gpumeter.meter import process_tree
from bf_jupyter.server.gpu_idle import IdlePolicy, IdleVerdict, idle_verdict
from bf_jupyter.slice import GpuSlice

__all__ = ["GpuWatch", "WatchedKernel", "kernels_on_slices"]

Json = dict[str, Any]
_log = logging.getLogger(__name__)
_SILENT_AFTER = 3  # a pod that never answered this many times runs an image without the handler


@dataclass
class WatchedKernel:
    """One GPU kernel as the watch sees it: its provisioner and its execution state."""

    kernel_id: str
    gpu_slice: GpuSlice
    provisioner: Any
    execution_state: str
    kernelspec: str


@dataclass
class _Entry:
    meter: GpuMeter | None = None
    reading: GpuReading | None = None
    verdict: IdleVerdict | None = None
    unanswered: int = 0
    pids_env: dict[str, str] | None = field(default=None)


class GpuWatch:
    """Readings and idle verdicts by kernel id, refreshed by ``refresh()`` (the loop calls it)."""

    def __init__(
        self,
        *,
        kernels: Callable[[], Iterable[WatchedKernel]],
        stop: Callable[[str], Awaitable[Any]],
        policy: IdlePolicy | None = None,
        kernelspec_metadata: Callable[[str], Any] = lambda name: None,
        interval: float = DEFAULT_INTERVAL,
        probe: NvmlProbe | None = None,
        clock: Callable[[], float] = time.monotonic,
        ask_kernel: Callable[..., Awaitable[dict[str, Any] | None]] | None = None,
    ) -> None:
        self._kernels = kernels
        self._stop = stop
        self._policy = policy or IdlePolicy()
        self._metadata = kernelspec_metadata
        self.interval = interval
        self._probe = probe or NvmlProbe()
        self._clock = clock
        self._ask_kernel = ask_kernel
        self._entries: dict[str, _Entry] = {}
        self._task: asyncio.Task[None] | None = None

    # ----- what GET kernels shows ----------------------------------------------------------------

    def reading(self, kernel_id: str) -> Json | None:
        entry = self._entries.get(kernel_id)
        return None if entry is None or entry.reading is None else entry.reading.to_json()

    def idle(self, kernel_id: str) -> Json | None:
        entry = self._entries.get(kernel_id)
        return None if entry is None or entry.verdict is None else entry.verdict.to_json()

    # ----- the loop -------------------------------------------------------------------------------

    def ensure_running(self) -> None:
        """Start the refresh loop on the running event loop (once; no-op without one)."""
        if self._task is not None and not self._task.done():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = asyncio.create_task(self._loop(), name="bf-jupyter GPU watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # one bad round must not end the watch
                _log.warning("GPU watch round failed", exc_info=True)
            await asyncio.sleep(self.interval)

    async def refresh(self) -> None:
        """Read every GPU kernel once, then stop (or release) those idle past their timeout."""
        kernels = list(self._kernels())
        for gone in set(self._entries) - {k.kernel_id for k in kernels}:
            del self._entries[gone]
        for kernel in kernels:
            entry = self._entries.setdefault(kernel.kernel_id, _Entry())
            entry.reading = await self._read(kernel, entry)
            entry.verdict = self._verdict(kernel, entry.reading)
            if entry.verdict is not None and entry.verdict.act_now:
                await self._act(kernel, entry.verdict)

    def _verdict(self, kernel: WatchedKernel, reading: GpuReading | None) -> IdleVerdict | None:
        try:
            policy = self._policy.for_kernelspec(self._metadata(kernel.kernelspec))
        except ValueError as error:
            _log.warning("kernelspec %s: %s; using the server's setting", kernel.kernelspec, error)
            policy = self._policy
        return idle_verdict(reading, policy, execution_state=kernel.execution_state)

    async def _act(self, kernel: WatchedKernel, verdict: IdleVerdict) -> None:
        release = getattr(kernel.provisioner, "release_gpu_slice", None)
        minutes = verdict.idle_seconds // 60
        if verdict.action == "release" and release is not None:
            _log.info(
                "GPU kernel %s idle for %d min: releasing its slice", kernel.kernel_id, minutes
            )
            await release()
            return
        _log.info("GPU kernel %s idle for %d min: shutting it down", kernel.kernel_id, minutes)
        await self._stop(kernel.kernel_id)
        self._entries.pop(kernel.kernel_id, None)

    # ----- one reading ----------------------------------------------------------------------------

    async def _read(self, kernel: WatchedKernel, entry: _Entry) -> GpuReading | None:
        """Where the GPUs are this machine's (``bitfusion-sim`` leasing local GPUs), the server
        reads the kernel's process tree; a virtual pool's kernel has no reading; any other kernel
        (a pod, or one under a real Bitfusion client, whose NVML the client serves) is asked."""
        provisioner = kernel.provisioner
        pid = getattr(provisioner, "pid", None)  # a local provisioner: the Bitfusion client's pid
        if isinstance(pid, int):
            pids = await asyncio.to_thread(process_tree, pid)
            if entry.pids_env is None and len(pids) > 1:
                entry.pids_env = await asyncio.to_thread(_kernel_environment, pids[1:])
            env = entry.pids_env
            if env is None:
                return None  # not started yet
            if env.get("BF_SIM_LEASE_ID"):
                if not env.get("CUDA_VISIBLE_DEVICES"):
                    return None  # the virtual pool: no real GPU to read
                return await asyncio.to_thread(self._read_local, kernel, entry, env, pids)
        return await self._read_remote(provisioner, entry)

    def _read_local(
        self, kernel: WatchedKernel, entry: _Entry, env: dict[str, str], pids: list[int]
    ) -> GpuReading | None:
        if entry.meter is None:
            limit = env.get("BF_GPU_MEMORY_MIB", "")
            entry.meter = GpuMeter(
                kernel.gpu_slice,
                probe=self._probe,
                per_gpu_limit_mib=int(limit) if limit.isdigit() and int(limit) > 0 else None,
                interval=self.interval / 2,
                clock=self._clock,
            )
        return entry.meter.read(pids)

    async def _read_remote(self, provisioner: Any, entry: _Entry) -> GpuReading | None:
        from bf_jupyter.kernels.kernel_channels import request_gpu_reading

        connection = getattr(provisioner, "connection_info", None)
        if not connection or entry.unanswered >= _SILENT_AFTER:
            return None
        ask = self._ask_kernel or request_gpu_reading
        content = await ask(connection, timeout=min(5.0, self.interval))
        if content is None:
            entry.unanswered += 1
            return None
        entry.unanswered = 0
        return GpuReading.from_json(content.get("gpu"))


def kernels_on_slices(kernel_manager: Any) -> list[WatchedKernel]:
    """The kernel manager's kernels whose provisioner holds a GPU slice."""
    found = []
    for kernel_id in list(kernel_manager.list_kernel_ids()):
        try:
            kernel = kernel_manager.get_kernel(kernel_id)
        except KeyError:  # ended while listing
            continue
        provisioner = getattr(kernel, "provisioner", None)
        gpu_slice = getattr(provisioner, "gpu_slice", None)
        if isinstance(gpu_slice, GpuSlice):
            found.append(
                WatchedKernel(
                    kernel_id,
                    gpu_slice,
                    provisioner,
                    str(getattr(kernel, "execution_state", "") or ""),
                    str(getattr(kernel, "kernel_name", "") or ""),
                )
            )
    return found


def _kernel_environment(pids: list[int]) -> dict[str, str] | None:
    """The environment of the kernel under the client (the first descendant that can be read)."""
    import psutil

    for pid in pids:
        try:
            env: dict[str, str] = psutil.Process(pid).environ()
        except psutil.Error:
            continue
        return env
    return None
