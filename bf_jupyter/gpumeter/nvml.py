"""NVML, per process: the GPU memory and utilisation of a set of processes.

``pynvml`` (the ``nvidia-ml-py`` package, extra ``gpu``) is imported on the first reading, never at
import time; tests hand the probe a stand-in module with the same functions. Every NVML failure
(library missing, driver not loaded, GPU lost) becomes ``NvmlUnavailable`` with NVML's own words.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

__all__ = ["NvmlProbe", "NvmlUnavailable", "ProcessUsage"]

_MIB = 1024 * 1024


class NvmlUnavailable(Exception):
    """NVML cannot be read here; the message says why (for logs, not for the sidebar)."""


@dataclass(frozen=True)
class ProcessUsage:
    """What NVML says of some processes: memory they hold (MiB, all GPUs), their utilisation (the
    highest SM % of any of them on any GPU; None when this GPU does not report it per process) and
    the total memory of each GPU they run on (MiB, by GPU index)."""

    memory_used_mib: int
    utilization_percent: int | None
    device_memory_mib: dict[int, int]
    visible_devices: int


class NvmlProbe:
    """Reads NVML for sets of process ids. Thread-safe; NVML is initialised once, on first use."""

    def __init__(self, module: Any | None = None) -> None:
        self._module = module
        self._lock = threading.Lock()
        self._initialised = False
        self._last_seen: dict[int, int] = {}  # GPU index → NVML timestamp of the last sample read

    def sample(self, pids: Collection[int]) -> ProcessUsage:
        """Usage of ``pids`` on every GPU NVML sees. Raises ``NvmlUnavailable``."""
        with self._lock:
            nvml = self._nvml()
            try:
                return self._sample(nvml, set(pids))
            except nvml.NVMLError as error:
                raise NvmlUnavailable(f"NVML: {error}") from None

    def _nvml(self) -> Any:
        if self._module is None:
            try:
                import pynvml
            except ImportError:
                raise NvmlUnavailable(
                    "nvidia-ml-py is not installed (pip install 'bf-jupyter[gpu]')"
                ) from None
            self._module = pynvml
        nvml = self._module
        if not self._initialised:
            try:
                nvml.nvmlInit()
            except nvml.NVMLError as error:
                raise NvmlUnavailable(f"NVML: {error}") from None
            self._initialised = True
        return nvml

    def _sample(self, nvml: Any, pids: set[int]) -> ProcessUsage:
        used = 0
        utilization: int | None = None
        devices: dict[int, int] = {}
        count = int(nvml.nvmlDeviceGetCount())
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            mine = [p for p in _processes(nvml, handle) if p.pid in pids]
            if not mine:
                continue
            devices[index] = int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // _MIB
            used += sum(int(p.usedGpuMemory or 0) for p in mine) // _MIB
            percent = self._utilization(nvml, index, handle, pids)
            if percent is not None:
                utilization = max(utilization or 0, percent)
        if count and not devices:
            utilization = 0  # no process of these runs on any GPU: nothing is computing there
        return ProcessUsage(used, utilization, devices, count)

    def _utilization(self, nvml: Any, index: int, handle: Any, pids: set[int]) -> int | None:
        """Highest SM utilisation of ``pids`` on one GPU since the last look (0 when they left no
        sample: NVML keeps samples only of processes that ran kernels)."""
        try:
            samples = nvml.nvmlDeviceGetProcessUtilization(handle, self._last_seen.get(index, 0))
        except nvml.NVMLError as error:
            if _is(nvml, error, "NVML_ERROR_NOT_FOUND"):
                return 0
            if _is(nvml, error, "NVML_ERROR_NOT_SUPPORTED"):
                return None
            raise
        mine = [s for s in samples if s.pid in pids]
        if samples:
            self._last_seen[index] = max(int(s.timeStamp) for s in samples)
        return min(100, max((int(s.smUtil) for s in mine), default=0))


def _processes(nvml: Any, handle: Any) -> list[Any]:
    """Compute and graphics processes of one GPU, each pid once (a process may be both)."""
    found = {p.pid: p for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)}
    try:
        graphics = nvml.nvmlDeviceGetGraphicsRunningProcesses(handle)
    except nvml.NVMLError:  # graphics processes are not listed on some data-centre GPUs
        graphics = []
    for process in graphics:
        found.setdefault(process.pid, process)
    return list(found.values())


def _is(nvml: Any, error: Any, code_name: str) -> bool:
    code = getattr(nvml, code_name, None)
    return code is not None and getattr(error, "value", None) == code
