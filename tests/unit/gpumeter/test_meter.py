"""The GPU meter over the NVML stand-in: readings, missing devices, driver errors, idle time."""

from __future__ import annotations

import pytest

from bf_jupyter.gpumeter import GpuMeter, GpuReading, NvmlProbe
from bf_jupyter.slice import GpuSlice
from tests.support.fake_nvml import FakeGpu, FakeNvml

KERNEL = [100, 101]  # the kernel and a child


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def meter(nvml: FakeNvml, clock: Clock, slice_text: str = "1x50%", **kwargs: object) -> GpuMeter:
    return GpuMeter(GpuSlice.parse(slice_text), probe=NvmlProbe(nvml), clock=clock, **kwargs)  # type: ignore[arg-type]


def test_reading_counts_the_kernels_processes_against_its_share(clock: Clock) -> None:
    nvml = FakeNvml([FakeGpu(total_mib=16384)])
    nvml.gpus[0].run(100, 2048, sm_util=35)
    nvml.gpus[0].run(101, 1024)
    nvml.gpus[0].run(999, 8000, sm_util=90)  # another kernel's process: not ours

    reading = meter(nvml, clock).read(KERNEL)

    assert reading == GpuReading(3072, 8192, 35, 0, over_share=False)


def test_memory_slice_limit_and_lease_limit(clock: Clock) -> None:
    nvml = FakeNvml([FakeGpu(), FakeGpu()])
    nvml.gpus[1].run(100, 512)

    assert meter(nvml, clock, "2x4Gi").read(KERNEL).memory_limit_mib == 8192  # type: ignore[union-attr]
    leased = meter(nvml, clock, "1x50%", per_gpu_limit_mib=6000).read(KERNEL)
    assert leased is not None and leased.memory_limit_mib == 6000


def test_more_than_the_share_is_flagged(clock: Clock) -> None:
    nvml = FakeNvml([FakeGpu(total_mib=16384)])
    nvml.gpus[0].run(100, 9000)

    reading = meter(nvml, clock).read(KERNEL)

    assert reading is not None and reading.over_share
    assert "over its share" in reading.describe()


def test_nvml_is_read_at_most_once_per_interval(clock: Clock) -> None:
    nvml = FakeNvml([FakeGpu()])
    gpu_meter = meter(nvml, clock, interval=5.0)
    gpu_meter.read(KERNEL)
    clock.now += 4.9
    gpu_meter.read(KERNEL)
    assert nvml.calls == 1
    clock.now += 0.2
    gpu_meter.read(KERNEL)
    assert nvml.calls == 2


def test_idle_seconds_count_from_the_last_busy_reading(clock: Clock) -> None:
    nvml = FakeNvml([FakeGpu()])
    gpu = nvml.gpus[0]
    gpu.run(100, 1024, sm_util=60)
    gpu_meter = meter(nvml, clock)
    assert gpu_meter.read(KERNEL).idle_seconds == 0  # type: ignore[union-attr]

    gpu.sm_util[100] = 0
    clock.now += 30
    assert gpu_meter.read(KERNEL).idle_seconds == 30  # type: ignore[union-attr]
    clock.now += 30
    assert gpu_meter.read(KERNEL).idle_seconds == 60  # type: ignore[union-attr]

    gpu.sm_util[100] = 5
    clock.now += 10
    assert gpu_meter.read(KERNEL).idle_seconds == 0  # type: ignore[union-attr]


def test_a_kernel_that_never_touched_its_gpu_is_idle_from_the_first_look(clock: Clock) -> None:
    nvml = FakeNvml([FakeGpu()])
    gpu_meter = meter(nvml, clock)
    first = gpu_meter.read(KERNEL)
    clock.now += 120
    later = gpu_meter.read(KERNEL)

    assert first == GpuReading(0, None, 0, 0)  # no GPU touched: a percent share has no size yet
    assert later is not None and later.idle_seconds == 120


def test_no_per_process_utilisation_means_unknown_not_idle(clock: Clock) -> None:
    nvml = FakeNvml([FakeGpu(per_process_utilization=False)])
    nvml.gpus[0].run(100, 100)

    reading = meter(nvml, clock).read(KERNEL)

    assert reading is not None
    assert reading.utilization_percent is None and reading.idle_seconds is None


@pytest.mark.parametrize("code", [9, 12])  # driver not loaded, library not found
def test_no_driver_is_no_reading(clock: Clock, code: int) -> None:
    assert meter(FakeNvml([FakeGpu()], init_error=code), clock).read(KERNEL) is None


def test_no_device_is_no_reading_not_zeros(clock: Clock) -> None:
    assert meter(FakeNvml([]), clock).read(KERNEL) is None


def test_a_lost_gpu_is_no_reading(clock: Clock) -> None:
    assert meter(FakeNvml([FakeGpu(lost=True)]), clock).read(KERNEL) is None


def test_missing_nvidia_ml_py_is_no_reading(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as if not installed

    gpu_meter = GpuMeter(GpuSlice.parse("1"), probe=NvmlProbe(), clock=clock)

    assert gpu_meter.read(KERNEL) is None


def test_reading_from_a_kernel_is_checked() -> None:
    sent = {"memory_used_mib": 10, "memory_limit_mib": "x", "utilization_percent": 400,
            "idle_seconds": -1, "over_share": "yes"}  # fmt: skip

    assert GpuReading.from_json(sent) == GpuReading(10, None, None, None, over_share=False)
    assert GpuReading.from_json(["not", "a", "reading"]) is None
    assert GpuReading.from_json(GpuReading(1, 2, 3, 4, True).to_json()) == GpuReading(
        1, 2, 3, 4, True
    )
