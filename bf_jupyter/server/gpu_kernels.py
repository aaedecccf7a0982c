"""GPU kernels of this server: launch on a slice in the background, list, stop.

jupyter_server's ``POST /api/kernels`` cannot carry a slice, so launches come here: the slice travels
to the provisioner as ``BF_SLICE`` in the kernel's environment. ``launch`` answers at once with the
kernel id; the start continues in a named background task that publishes progress on the shared
bus (the provisioner publishes its own stages there too) and ends with ``ready`` or ``failed``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bf_jupyter.contract import ENV_GPU_BACKEND, ENV_SLICE
from bf_jupyter.kernels.progress import PROGRESS
from bf_jupyter.server.errors import ApiError
from bf_jupyter.slice import GpuSlice

__all__ = ["GpuKernels", "KernelRecord"]

Json = dict[str, Any]
State = Literal["starting", "running", "failed", "stopping"]
_log = logging.getLogger(__name__)


@dataclass
class KernelRecord:
    """One kernel this server launched on a slice."""

    kernel_id: str
    gpu_slice: GpuSlice
    units: int | None  # bitfusion.io/gpu units; None on other GPU backends
    kernelspec: str
    path: str | None
    started: float
    state: State = "starting"
    reason: str | None = None
    stop_requested: bool = False
    task: asyncio.Task[None] | None = None
    gpu_backend: str = "bitfusion"


class GpuKernels:
    """Owns the launches made through the REST API and lists every GPU kernel of the server."""

    def __init__(
        self,
        *,
        kernel_manager: Any,
        session_manager: Any = None,
        launch_timeout: float = 300.0,
        on_change: Callable[[], None] = lambda: None,
        gpu_status: Callable[[str], Json] = lambda kernel_id: {"gpu": None, "gpu_idle": None},
    ) -> None:
        self._km = kernel_manager
        self._gpu_status = gpu_status  # the GPU watch's last reading and idle flag of a kernel
        self._sessions = session_manager
        self._launch_timeout = launch_timeout
        self._on_change = on_change
        self._records: dict[str, KernelRecord] = {}
        # Units the quota gate admitted, by kernel id, from admission until the kernel ends: a
        # kernel started through the stock /api/kernels or /api/sessions has no record here.
        self._held: dict[str, tuple[GpuSlice, int]] = {}

    # ----- launch --------------------------------------------------------------------------------

    def launch(
        self,
        gpu_slice: GpuSlice,
        *,
        units: int | None,
        kernelspec: str,
        path: str | None,
        gpu_backend: str = "bitfusion",
    ) -> KernelRecord:
        """Start a kernel on ``gpu_slice`` served by ``gpu_backend`` in the background and return
        its record at once."""
        record = KernelRecord(
            str(uuid.uuid4()), gpu_slice, units, kernelspec, path, started=time.time()
        )
        record.gpu_backend = gpu_backend
        self._records[record.kernel_id] = record
        PROGRESS.publish(
            record.kernel_id, "requested", f"Starting {kernelspec} on {gpu_slice.describe()}"
        )
        record.task = asyncio.create_task(
            self._start(record), name=f"bf-jupyter start kernel {record.kernel_id}"
        )
        self._on_change()
        return record

    async def _start(self, record: KernelRecord) -> None:
        kernel_id = record.kernel_id
        env = {
            **os.environ,
            ENV_SLICE: record.gpu_slice.to_text(),
            ENV_GPU_BACKEND: record.gpu_backend,
        }
        if record.path:
            env["JPY_SESSION_NAME"] = record.path
        try:
            await self._km.start_kernel(
                kernel_id=kernel_id, kernel_name=record.kernelspec, path=record.path, env=env
            )
            if not _finished(kernel_id):
                PROGRESS.publish(
                    kernel_id, "info", "Kernel process started; waiting for it to answer"
                )
            await self._wait_until_ready(kernel_id)
        except asyncio.CancelledError:
            self._fail(record, "The server stopped before the kernel was ready")
            raise
        except Exception as error:
            _log.warning("GPU kernel %s did not start: %s", kernel_id, error)
            self._fail(record, f"The kernel did not start: {getattr(error, 'message', error)}")
            return
        record.state = "running"
        if not _finished(kernel_id):
            PROGRESS.publish(kernel_id, "ready", f"Kernel ready on {record.gpu_slice.describe()}")
        if record.stop_requested:
            await self._shutdown(kernel_id)
        self._on_change()

    async def _wait_until_ready(self, kernel_id: str) -> None:
        client = self._km.get_kernel(kernel_id).client()
        client.start_channels()
        try:
            waiting = client.wait_for_ready(timeout=self._launch_timeout)
            if inspect.isawaitable(waiting):
                await waiting
        except RuntimeError as error:  # jupyter_client's wording for a kernel that never answered
            raise TimeoutError(
                f"no answer within {self._launch_timeout:g} s (launch_timeout): {error}"
            ) from None
        finally:
            client.stop_channels()

    def _fail(self, record: KernelRecord, reason: str) -> None:
        record.state, record.reason = "failed", reason
        if not _finished(record.kernel_id):
            PROGRESS.publish(record.kernel_id, "failed", reason)
        if record.stop_requested:  # nobody is waiting to read why: it was being stopped anyway
            self._records.pop(record.kernel_id, None)
        self._on_change()

    # ----- list and stop -------------------------------------------------------------------------

    def used_units(self, *, excluding: str | None = None) -> int:
        """Units held by this server's GPU kernels that are starting or running (all but
        ``excluding``: a kernel being admitted again on restart is not counted twice)."""
        return sum(
            item["units"] or 0
            for item in self._gpu_kernels()
            if item["state"] != "failed" and item["id"] != excluding
        )

    def hold(self, kernel_id: str, gpu_slice: GpuSlice, units: int) -> None:
        """The quota gate admitted ``gpu_slice`` for ``kernel_id`` at ``units`` (its price)."""
        self._held[kernel_id] = (gpu_slice, units)
        self._on_change()

    def forget_refused_start(self, kernel_id: str) -> None:
        """A start refused before anything ran: jupyter_client (8.10) keeps a failed start among
        its pending kernels, and shutting the server down then fails on it (404)."""
        pending = getattr(self._km, "_pending_kernels", None)
        if isinstance(pending, dict):
            pending.pop(kernel_id, None)

    def release(self, kernel_id: str) -> None:
        """The kernel ended or did not start: its admitted units are free."""
        if self._held.pop(kernel_id, None) is not None:
            self._on_change()

    def known(self, kernel_id: str) -> bool:
        return kernel_id in self._records or PROGRESS.known(kernel_id)

    async def settled(self, kernel_id: str) -> str | None:
        """Wait until a launch made here has finished starting; None when the kernel is usable
        (or was not launched here), else why it is not. A provisioner announces ``ready`` when
        its kernel answers, a moment before the kernel manager lists it: a tab must not open the
        kernel in that moment."""
        record = self._records.get(kernel_id)
        if record is None:
            return None
        if record.task is not None and not record.task.done():
            await asyncio.shield(record.task)
        if record.stop_requested:
            return "Stopped before it was ready"
        return record.reason if record.state == "failed" else None

    async def listing(self) -> list[Json]:
        """Every GPU kernel: launched here, or started elsewhere on a provisioner with a slice."""
        paths = await self._session_paths()
        now = time.time()
        items = self._gpu_kernels()
        for item in items:
            item["path"] = paths.get(item["id"], item["path"])
            item["age_seconds"] = (
                None if item["started"] is None else max(0, int(now - item["started"]))
            )
            item.update(self._gpu_status(item["id"]))
        return items

    async def stop(self, kernel_id: str) -> bool:
        """Stop a GPU kernel. True when it is gone now; False when a start in progress will be
        stopped as soon as it finishes. Raises ``ApiError`` 404 for an unknown id."""
        record = self._records.get(kernel_id)
        if record is not None and record.task is not None and not record.task.done():
            record.stop_requested, record.state = True, "stopping"
            self._on_change()
            return False
        if kernel_id in self._km:
            await self._shutdown(kernel_id)
            return True
        if record is not None:
            del self._records[kernel_id]  # a failed launch: forgetting it is all there is to do
            self._on_change()
            return True
        raise ApiError(404, f"No GPU kernel {kernel_id} on this server")

    async def close(self) -> None:
        """Cancel starts still in progress (the server is stopping); the kernel manager shuts
        down the kernels themselves."""
        tasks = [r.task for r in self._records.values() if r.task and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _shutdown(self, kernel_id: str) -> None:
        if kernel_id in self._km:
            await self._km.shutdown_kernel(kernel_id)
        self._records.pop(kernel_id, None)
        self._on_change()

    def _gpu_kernels(self) -> list[Json]:
        items: dict[str, Json] = {}
        for kernel_id in list(self._km.list_kernel_ids()):
            kernel = self._km.get_kernel(kernel_id)
            provisioner = getattr(kernel, "provisioner", None)
            record = self._records.get(kernel_id)
            gpu_slice = getattr(provisioner, "gpu_slice", None) or (record and record.gpu_slice)
            if not isinstance(gpu_slice, GpuSlice):
                continue
            held = self._held.get(kernel_id)
            items[kernel_id] = _kernel_json(
                kernel_id,
                gpu_slice,
                units=record.units if record else held[1] if held else _units_or_none(gpu_slice),
                kernelspec=getattr(kernel, "kernel_name", record.kernelspec if record else ""),
                path=record.path if record else None,
                state="stopping" if record and record.stop_requested else _state(kernel, record),
                pod=getattr(provisioner, "pod_name", None),
                started=record.started if record else None,
                reason=getattr(kernel, "reason", None) or None,
            )
        for kernel_id, record in list(self._records.items()):
            if kernel_id in items:
                continue
            if record.state == "running":  # shut down elsewhere (Running panel, culler): forget it
                del self._records[kernel_id]
                continue
            items[kernel_id] = _kernel_json(
                kernel_id,
                record.gpu_slice,
                units=record.units,
                kernelspec=record.kernelspec,
                path=record.path,
                state=record.state,
                pod=None,
                started=record.started,
                reason=record.reason,
            )
        for kernel_id, (gpu_slice, units) in list(self._held.items()):
            if kernel_id not in items:  # admitted, not yet listed by the kernel manager
                items[kernel_id] = _kernel_json(
                    kernel_id,
                    gpu_slice,
                    units=units,
                    kernelspec="",
                    path=None,
                    state="starting",
                    pod=None,
                    started=None,
                    reason=None,
                )
        return sorted(items.values(), key=lambda item: item["started"] or 0)

    async def _session_paths(self) -> dict[str, str]:
        if self._sessions is None:
            return {}
        try:
            sessions = await self._sessions.list_sessions()
        except Exception:  # sessions are a nicety here; the kernels list must not fail with them
            _log.debug("Could not list sessions", exc_info=True)
            return {}
        return {s["kernel"]["id"]: s.get("path") for s in sessions if s.get("kernel")}


def _finished(kernel_id: str) -> bool:
    return any(event.final for event in PROGRESS.history(kernel_id))


def _state(kernel: Any, record: KernelRecord | None) -> str:
    state = str(getattr(kernel, "execution_state", "") or "")
    if record is not None and record.state == "starting":
        return "starting"
    return state or "running"


def _units_or_none(gpu_slice: GpuSlice) -> int | None:
    return gpu_slice.quota_units() if gpu_slice.percent is not None else None


def _kernel_json(
    kernel_id: str,
    gpu_slice: GpuSlice,
    *,
    units: int | None,
    kernelspec: str,
    path: str | None,
    state: str,
    pod: str | None,
    started: float | None,
    reason: str | None,
) -> Json:
    return {
        "id": kernel_id,
        "slice": gpu_slice.to_text(),
        "description": gpu_slice.describe(),
        "units": units,
        "kernelspec": kernelspec,
        "path": path,
        "state": state,
        "pod": pod,
        "started": started,
        "reason": reason,
    }
