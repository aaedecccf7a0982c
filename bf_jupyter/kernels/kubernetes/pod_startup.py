"""A kernel pod's start-up as one stream of signals: progress, its address, or why it failed.

Three API streams are merged: the pod's own changes (scheduled, started, address, failures), the
Events about it (image pulling) and, once the container runs, its log (the Bitfusion client's
"Locked N GPUs" line, and the last words of a container that exits). Each stage is reported once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from bf_jupyter.bitfusion.run_output import failure_reason, read_run_line
from bf_jupyter.kernels.kubernetes import pod_watch
from bf_jupyter.kernels.kubernetes.pod_builder import CONTAINER_NAME
from bf_jupyter.kernels.kubernetes.pod_status import (
    PodReading,
    event_failure,
    event_progress,
    one_sentence,
    read_pod,
)
from bf_jupyter.kernels.remote_start import Address, Progress, RemoteStartFailure
from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable

if TYPE_CHECKING:
    from bf_jupyter.kubeapi import KubeApi, WatchEvent

__all__ = ["PodStartupWatch"]

_KEPT_LOG_LINES = 40
Signal = Progress | Address


class PodStartupWatch:
    """Follows one kernel pod from creation until its caller stops reading."""

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        name: str,
        resource_version: str | None,
        fail_on_unschedulable: bool,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.resource_version = resource_version
        self.fail_on_unschedulable = fail_on_unschedulable
        self._reached: set[str] = set()
        self._recent: deque[str] = deque(maxlen=_KEPT_LOG_LINES)
        self._merged: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._pumps: list[asyncio.Task[None]] = []

    async def signals(self) -> AsyncGenerator[Signal, None]:
        """Progress and the address as they happen; raises ``RemoteStartFailure`` with the pod's
        reason the moment one appears. Closing the generator ends every stream."""
        changes = pod_watch.follow_pod(
            self.api, self.namespace, self.name, resource_version=self.resource_version
        )
        self._start_pump("pod", changes)
        self._start_pump("event", pod_watch.follow_events(self.api, self.namespace, self.name))
        try:
            while True:
                kind, payload = await self._merged.get()
                if isinstance(payload, (KubeApiError, KubeUnavailable)):
                    raise RemoteStartFailure(
                        one_sentence(f"Kubernetes failed while the kernel started: {payload}")
                    )
                if kind == "error":
                    raise payload
                for signal_ in await self._interpret(kind, payload):
                    yield signal_
        finally:
            for pump in self._pumps:
                pump.cancel()
            await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _interpret(self, kind: str, payload: Any) -> list[Signal]:
        if kind == "event":
            failure = event_failure(payload)
            if failure:
                raise RemoteStartFailure(failure)
            progress = event_progress(payload)
            return self._once([progress] if progress else [])
        if kind == "log":
            self._recent.append(payload)
            line = read_run_line(payload)
            return self._once([("locked", line.summary())] if line.locked else [])
        return await self._on_pod(payload)

    async def _on_pod(self, event: WatchEvent) -> list[Signal]:
        self.resource_version = (event.object.get("metadata") or {}).get("resourceVersion")
        if event.type == "DELETED":
            raise RemoteStartFailure("The kernel pod was deleted before the kernel was ready.")
        reading = self._read(event.object)
        if reading.failure:
            if reading.exit_code is not None:
                reading = await self._read_with_log_reason(event.object)
            raise RemoteStartFailure(reading.failure)
        signals = self._once(list(reading.reached))
        if reading.running and "log" not in self._reached:
            self._reached.add("log")
            self._start_pump(
                "log", pod_watch.follow_log(self.api, self.namespace, self.name, CONTAINER_NAME)
            )
        if reading.ip and "address" not in self._reached:
            self._reached.add("address")
            signals.append(Address(reading.ip))
        return signals

    def _read(self, pod: dict[str, Any], last_log_line: str | None = None) -> PodReading:
        return read_pod(
            pod,
            container=CONTAINER_NAME,
            fail_on_unschedulable=self.fail_on_unschedulable,
            last_log_line=last_log_line,
        )

    async def _read_with_log_reason(self, pod: dict[str, Any]) -> PodReading:
        """An exited pod, with the reason from its log when its status carries no message. The
        log is read again: the followed stream may not have delivered the last lines yet."""
        lines = await pod_watch.log_tail(
            self.api, self.namespace, self.name, CONTAINER_NAME
        ) or list(self._recent)
        return self._read(pod, failure_reason(lines) if lines else None)

    def _once(self, stages: list[tuple[Any, str]]) -> list[Signal]:
        fresh: list[Signal] = []
        for stage, message in stages:
            if stage not in self._reached:
                self._reached.add(stage)
                fresh.append(Progress(stage, message))
        return fresh

    def _start_pump(self, kind: str, source: AsyncIterator[Any]) -> None:
        self._pumps.append(asyncio.create_task(self._pump(kind, source)))

    async def _pump(self, kind: str, source: AsyncIterator[Any]) -> None:
        try:
            async for item in source:
                self._merged.put_nowait((kind, item))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._merged.put_nowait(("error", error))
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
