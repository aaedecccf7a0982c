"""``GpuMeter``: one kernel's GPU reading, taken at most once per interval, with its idle time.

The meter owns what a reading means: memory of the kernel's processes against the slice's limit,
their utilisation, and seconds since it was last above zero. Whoever holds the meter says which
processes are the kernel's (the server: a local kernel's process tree; a kernel pod: its own).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from bf_jupyter.gpumeter.nvml import NvmlProbe, NvmlUnavailable, ProcessUsage
from bf_jupyter.gpumeter.reading import GpuReading

if TYPE_CHECKING:
    from bf_jupyter.slice import GpuSlice

__all__ = ["DEFAULT_INTERVAL", "GpuMeter", "process_tree"]

DEFAULT_INTERVAL = 5.0  # seconds: a sidebar refresh sees a fresh reading, NVML is read rarely
_log = logging.getLogger(__name__)


class GpuMeter:
    """Readings of one kernel on ``gpu_slice``.

    ``per_gpu_limit_mib`` is the slice's memory per GPU where the lease says it (``bitfusion-sim``'s
    ``$BF_GPU_MEMORY_MIB``); otherwise a memory slice gives it, and a percent slice takes its share
    of the GPUs the processes run on. ``clock`` is ``time.monotonic`` but for tests.
    """

    def __init__(
        self,
        gpu_slice: GpuSlice | None,
        *,
        probe: NvmlProbe,
        per_gpu_limit_mib: int | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slice = gpu_slice
        self._probe = probe
        self._per_gpu_limit = per_gpu_limit_mib
        self._interval = interval
        self._clock = clock
        self._taken: float | None = None
        self._reading: GpuReading | None = None
        self._busy_at: float | None = None  # last time utilisation was above zero (or first look)
        self._warned = False

    def read(self, pids: Collection[int]) -> GpuReading | None:
        """The reading of ``pids`` (the kernel's processes), NVML read at most once per interval;
        None when NVML cannot be read here. Never raises."""
        now = self._clock()
        if self._taken is not None and now - self._taken < self._interval:
            return self._reading
        self._taken = now
        try:
            usage = self._probe.sample(pids)
        except NvmlUnavailable as error:
            if not self._warned:  # once: a machine without GPUs says so on every reading
                _log.info("No GPU reading: %s", error)
                self._warned = True
            self._reading = None
            return None
        except Exception:  # a stand-in or driver answering nonsense must not break a listing
            _log.warning("GPU reading failed", exc_info=True)
            self._reading = None
            return None
        self._reading = self._interpret(usage, now)
        return self._reading

    @property
    def last(self) -> GpuReading | None:
        return self._reading

    def _interpret(self, usage: ProcessUsage, now: float) -> GpuReading | None:
        if usage.visible_devices == 0:
            return None  # NVML works but sees no GPU: nothing to read, not "0 MiB"
        if self._busy_at is None or (usage.utilization_percent or 0) > 0:
            self._busy_at = now
        limit = self._limit(usage)
        return GpuReading(
            memory_used_mib=usage.memory_used_mib,
            memory_limit_mib=limit,
            utilization_percent=usage.utilization_percent,
            idle_seconds=(
                None if usage.utilization_percent is None else max(0, int(now - self._busy_at))
            ),
            over_share=limit is not None and usage.memory_used_mib > limit,
        )

    def _limit(self, usage: ProcessUsage) -> int | None:
        gpu_slice = self._slice
        if gpu_slice is None:
            return None
        if self._per_gpu_limit is not None:
            return self._per_gpu_limit * gpu_slice.amount
        if gpu_slice.memory_mib is not None:
            return gpu_slice.memory_mib * gpu_slice.amount
        if gpu_slice.percent is not None and usage.device_memory_mib:
            # The GPUs the processes run on; a slice of more GPUs than they touch counts the rest
            # at the size of those seen.
            sizes = sorted(usage.device_memory_mib.values())
            per_gpu = sizes[0] * gpu_slice.percent // 100
            return per_gpu * gpu_slice.amount
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (empty when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.Error:
        return []


def own_process_tree() -> list[int]:
    """This process and its descendants (a kernel measuring itself)."""
    return process_tree(os.getpid())
