"""A stand-in for ``pynvml`` (nvidia-ml-py): the functions the GPU meter calls, over GPUs and
processes a test sets up, with NVML's error type and codes.

    nvml = FakeNvml([FakeGpu(total_mib=16384)])
    nvml.gpus[0].run(pid=4242, used_mib=2048, sm_util=35)
    NvmlProbe(module=nvml)  # or monkeypatch.setitem(sys.modules, "pynvml", nvml)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

__all__ = ["FakeGpu", "FakeNvml"]

_MIB = 1024 * 1024


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML error {self.value}")


_MESSAGES = {
    3: "Not Supported",
    6: "Not Found",
    9: "Driver Not Loaded",
    12: "NVML Shared Library Not Found",
    15: "GPU is lost",
}


@dataclass
class FakeGpu:
    total_mib: int = 16384
    processes: dict[int, int] = field(default_factory=dict)  # pid → MiB
    sm_util: dict[int, int] = field(default_factory=dict)  # pid → % (since the last sample)
    per_process_utilization: bool = True
    lost: bool = False

    def run(self, pid: int, used_mib: int, sm_util: int = 0) -> None:
        self.processes[pid] = used_mib
        self.sm_util[pid] = sm_util

    def stop(self, pid: int) -> None:
        self.processes.pop(pid, None)
        self.sm_util.pop(pid, None)


class FakeNvml:
    """The module: ``nvmlInit`` fails with ``init_error`` (e.g. 9, driver not loaded) when set."""

    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NOT_FOUND = 6
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_GPU_IS_LOST = 15
    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu] | None = None, *, init_error: int | None = None) -> None:
        self.gpus = list(gpus or [])
        self.init_error = init_error
        self.calls = 0  # device reads: what "at most once per interval" is measured by
        self._clock = 0

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        self.calls += 1
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        gpu = self.gpus[index]
        if gpu.lost:
            raise NVMLError(self.NVML_ERROR_GPU_IS_LOST)
        return gpu

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu) -> Any:
        used = sum(gpu.processes.values()) * _MIB
        return SimpleNamespace(
            total=gpu.total_mib * _MIB, used=used, free=gpu.total_mib * _MIB - used
        )

    def nvmlDeviceGetComputeRunningProcesses(self, gpu: FakeGpu) -> list[Any]:
        return [
            SimpleNamespace(pid=pid, usedGpuMemory=mib * _MIB) for pid, mib in gpu.processes.items()
        ]

    def nvmlDeviceGetGraphicsRunningProcesses(self, gpu: FakeGpu) -> list[Any]:
        raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetProcessUtilization(self, gpu: FakeGpu, last_seen: int) -> list[Any]:
        if not gpu.per_process_utilization:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        self._clock += 1
        samples = [
            SimpleNamespace(pid=pid, smUtil=util, memUtil=0, timeStamp=self._clock)
            for pid, util in gpu.sm_util.items()
            if util > 0
        ]
        if not samples:
            raise NVMLError(self.NVML_ERROR_NOT_FOUND)
        return samples
