"""The server's GPU watch on a fake clock: readings by kernel, idle flag, idle release, and a busy
kernel never stopped. NVML is the stand-in; local kernels are real processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from bf_jupyter.gpumeter import NvmlProbe
from bf_jupyter.gpumeter.meter import process_tree
from bf_jupyter.server.gpu_idle import IdlePolicy
from bf_jupyter.server.gpu_watch import GpuWatch, WatchedKernel
from bf_jupyter.slice import GpuSlice
from tests.support.fake_nvml import FakeGpu, FakeNvml


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _client_with_kernel(env: dict[str, str]) -> Iterator[tuple[int, int]]:
    """A process standing for the Bitfusion client with one child standing for the kernel."""
    client = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; subprocess.run(['sleep', '60'])"],
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + 10
    while len(tree := process_tree(client.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield client.pid, tree[1]
    finally:
        for pid in reversed(process_tree(client.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        client.wait()


@pytest.fixture
def leased_on_gpu0() -> Iterator[tuple[int, int]]:
    yield from _client_with_kernel(
        {"BF_SIM_LEASE_ID": "7", "CUDA_VISIBLE_DEVICES": "0", "BF_GPU_MEMORY_MIB": "8192"}
    )


@pytest.fixture
def leased_on_virtual_pool() -> Iterator[tuple[int, int]]:
    yield from _client_with_kernel(
        {"BF_SIM_LEASE_ID": "8", "CUDA_VISIBLE_DEVICES": "", "BF_GPU_MEMORY_MIB": "8192"}
    )


class Kernels:
    """What the kernel manager holds, and which the watch stopped."""

    def __init__(self) -> None:
        self.items: dict[str, WatchedKernel] = {}
        self.stopped: list[str] = []

    def add(self, kernel_id: str, provisioner: Any, state: str = "idle", spec: str = "py") -> None:
        self.items[kernel_id] = WatchedKernel(
            kernel_id, GpuSlice.parse("1x50%"), provisioner, state, spec
        )

    async def stop(self, kernel_id: str) -> bool:
        self.stopped.append(kernel_id)
        self.items.pop(kernel_id)
        return True


def watch(kernels: Kernels, nvml: FakeNvml, clock: Clock, **kwargs: Any) -> GpuWatch:
    return GpuWatch(
        kernels=lambda: list(kernels.items.values()),
        stop=kernels.stop,
        probe=NvmlProbe(nvml),
        clock=clock,
        interval=5.0,
        **kwargs,
    )


async def test_a_local_kernel_on_a_real_gpu_is_read_from_its_process_tree(
    leased_on_gpu0: tuple[int, int],
) -> None:
    client, kernel = leased_on_gpu0
    nvml = FakeNvml([FakeGpu(total_mib=16384)])
    nvml.gpus[0].run(kernel, 3000, sm_util=40)
    nvml.gpus[0].run(999_999, 5000, sm_util=99)  # someone else's
    kernels, clock = Kernels(), Clock()
    kernels.add("k1", SimpleNamespace(pid=client, connection_info={}))
    gpu_watch = watch(kernels, nvml, clock)

    await gpu_watch.refresh()

    assert gpu_watch.reading("k1") == {
        "memory_used_mib": 3000, "memory_limit_mib": 8192, "utilization_percent": 40,
        "idle_seconds": 0, "over_share": False,
    }  # fmt: skip
    assert gpu_watch.idle("k1") is None


async def test_a_virtual_pool_kernel_has_no_gpu_reading(
    leased_on_virtual_pool: tuple[int, int],
) -> None:
    client, _ = leased_on_virtual_pool
    kernels = Kernels()
    kernels.add("k1", SimpleNamespace(pid=client, connection_info={}))
    gpu_watch = watch(kernels, FakeNvml([FakeGpu()]), Clock())

    await gpu_watch.refresh()

    assert gpu_watch.reading("k1") is None


async def test_a_pod_reports_over_its_control_channel_and_bad_reports_are_dropped() -> None:
    asked: list[dict[str, Any]] = []
    answers: list[dict[str, Any] | None] = [
        {"gpu": {"memory_used_mib": 100, "memory_limit_mib": 8192, "utilization_percent": 3,
                 "idle_seconds": 0, "over_share": False}},
        {"gpu": "lots"},
    ]  # fmt: skip

    async def ask(connection: dict[str, Any], *, timeout: float) -> dict[str, Any] | None:
        asked.append(connection)
        return answers.pop(0)

    kernels = Kernels()
    kernels.add("pod", SimpleNamespace(connection_info={"ip": "10.0.0.5"}))
    gpu_watch = watch(kernels, FakeNvml(), Clock(), ask_kernel=ask)

    await gpu_watch.refresh()
    assert gpu_watch.reading("pod") == {
        "memory_used_mib": 100, "memory_limit_mib": 8192, "utilization_percent": 3,
        "idle_seconds": 0, "over_share": False,
    }  # fmt: skip
    await gpu_watch.refresh()
    assert gpu_watch.reading("pod") is None
    assert asked == [{"ip": "10.0.0.5"}] * 2


async def test_a_pod_that_never_answers_is_not_asked_forever() -> None:
    asked = 0

    async def ask(connection: dict[str, Any], *, timeout: float) -> dict[str, Any] | None:
        nonlocal asked
        asked += 1
        return None

    kernels = Kernels()
    kernels.add("old-image", SimpleNamespace(connection_info={"ip": "10.0.0.6"}))
    gpu_watch = watch(kernels, FakeNvml(), Clock(), ask_kernel=ask)
    for _ in range(10):
        await gpu_watch.refresh()

    assert asked == 3
    assert gpu_watch.reading("old-image") is None


async def _idle_run(
    kernel_pids: tuple[int, int], policy: IdlePolicy, *, state: str = "idle", minutes: int = 31
) -> tuple[Kernels, GpuWatch, Clock, list[Any]]:
    client, kernel = kernel_pids
    nvml = FakeNvml([FakeGpu()])
    nvml.gpus[0].run(kernel, 2000, sm_util=0)
    kernels, clock = Kernels(), Clock()
    kernels.add("k1", SimpleNamespace(pid=client, connection_info={}), state=state)
    gpu_watch = watch(kernels, nvml, clock, policy=policy)
    flags = []
    for _ in range(minutes + 1):
        await gpu_watch.refresh()
        flags.append(gpu_watch.idle("k1"))
        clock.now += 60
    return kernels, gpu_watch, clock, flags


async def test_an_idle_gpu_is_flagged_then_its_kernel_shut_down(
    leased_on_gpu0: tuple[int, int],
) -> None:
    kernels, _, _, flags = await _idle_run(leased_on_gpu0, IdlePolicy(1800, 300))

    assert flags[24] is None
    assert flags[25] == {"idle_seconds": 1500, "stop_in_seconds": 300, "action": "shutdown"}
    assert flags[29] == {"idle_seconds": 1740, "stop_in_seconds": 60, "action": "shutdown"}
    assert kernels.stopped == ["k1"]
    assert flags[30] is None  # stopped at 30 min, and forgotten


async def test_idle_release_is_off_by_default(leased_on_gpu0: tuple[int, int]) -> None:
    kernels, _, _, flags = await _idle_run(leased_on_gpu0, IdlePolicy(), minutes=120)

    assert kernels.stopped == []
    assert set(map(str, flags)) == {"None"}


async def test_a_busy_kernel_is_never_stopped(leased_on_gpu0: tuple[int, int]) -> None:
    kernels, gpu_watch, _, flags = await _idle_run(
        leased_on_gpu0, IdlePolicy(1800, 300), state="busy", minutes=60
    )

    assert kernels.stopped == []
    assert flags[-1] == {"idle_seconds": 3600, "stop_in_seconds": 0, "action": "shutdown"}
    # When the cell ends, the next round stops it
    kernels.items["k1"].execution_state = "idle"
    await gpu_watch.refresh()
    assert kernels.stopped == ["k1"]


async def test_release_falls_back_to_shutdown_where_the_backend_cannot(
    leased_on_gpu0: tuple[int, int],
) -> None:
    kernels, _, _, _ = await _idle_run(leased_on_gpu0, IdlePolicy(600, 60, "release"), minutes=11)

    assert kernels.stopped == ["k1"]


async def test_release_frees_the_slice_where_the_backend_can() -> None:
    released: list[str] = []

    async def release_gpu_slice() -> None:
        released.append("k1")

    async def ask(connection: dict[str, Any], *, timeout: float) -> dict[str, Any] | None:
        return {"gpu": {"memory_used_mib": 0, "memory_limit_mib": 100, "utilization_percent": 0,
                        "idle_seconds": 700, "over_share": False}}  # fmt: skip

    kernels = Kernels()
    kernels.add(
        "k1", SimpleNamespace(connection_info={"ip": "x"}, release_gpu_slice=release_gpu_slice)
    )
    gpu_watch = watch(
        kernels, FakeNvml(), Clock(), policy=IdlePolicy(600, 60, "release"), ask_kernel=ask
    )

    await gpu_watch.refresh()

    assert released == ["k1"] and kernels.stopped == []


async def test_a_kernelspec_sets_its_own_timeout(leased_on_gpu0: tuple[int, int]) -> None:
    client, kernel = leased_on_gpu0
    nvml = FakeNvml([FakeGpu()])
    nvml.gpus[0].run(kernel, 10)
    kernels, clock = Kernels(), Clock()
    kernels.add("k1", SimpleNamespace(pid=client, connection_info={}), spec="short")
    metadata = {"short": {"bf_jupyter": {"gpu_idle_timeout": 120, "gpu_idle_warning": 60}}}
    gpu_watch = watch(kernels, nvml, clock, policy=IdlePolicy(0), kernelspec_metadata=metadata.get)

    for _ in range(3):
        await gpu_watch.refresh()
        clock.now += 60

    assert kernels.stopped == ["k1"]


def test_idle_policy_errors_name_the_value() -> None:
    with pytest.raises(
        ValueError, match="gpu_idle_action 'pause' is not known: use shutdown or release"
    ):
        IdlePolicy(60, action="pause")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gpu_idle_timeout 'soon' is not a number"):
        IdlePolicy().for_kernelspec({"bf_jupyter": {"gpu_idle_timeout": "soon"}})
