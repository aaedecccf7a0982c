"""A kernel answers the server's "how much GPU are you using?" on its own control channel.

Kernel pods are measured from inside (the server cannot see a pod's processes): the in-pod
launcher registers a handler for ``bf_gpu_request`` on the kernel's control channel, which the
server already talks to (``kernel_channels``), so no port is added. The control channel is served
while a cell runs, so a busy kernel answers too. The reply's content is ``{"gpu": reading | null}``;
the meter rate-limits NVML, so a chatty server costs the kernel nothing more.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bf_jupyter.contract import ENV_SLICE
from bf_jupyter.gpumeter import GpuMeter, GpuReading, NvmlProbe
from bf_jupyter.gpumeter.meter import own_process_tree
from bf_jupyter.slice import GpuSlice, SliceError

__all__ = ["GPU_REPLY", "GPU_REQUEST", "install_gpu_report", "kernel_meter", "own_reading"]

GPU_REQUEST = "bf_gpu_request"
GPU_REPLY = "bf_gpu_reply"


def kernel_meter(environ: Mapping[str, str] = os.environ) -> GpuMeter:
    """The meter of this kernel process: its slice from ``$BF_SLICE``, the lease's memory per GPU
    from ``$BF_GPU_MEMORY_MIB`` where the client set it."""
    try:
        gpu_slice: GpuSlice | None = GpuSlice.parse(environ.get(ENV_SLICE, ""))
    except SliceError:
        gpu_slice = None
    limit = environ.get("BF_GPU_MEMORY_MIB", "")
    return GpuMeter(
        gpu_slice,
        probe=NvmlProbe(),
        per_gpu_limit_mib=int(limit) if limit.isdigit() and int(limit) > 0 else None,
    )


_shared: list[GpuMeter] = []


def shared_meter() -> GpuMeter:
    """This process's one meter: the server's question and the live-curves widget get the same
    reading, and NVML is read once per interval for both."""
    if not _shared:
        _shared.append(kernel_meter())
    return _shared[0]


def own_reading() -> GpuReading | None:
    """This kernel's GPU reading (its process tree), None where there is none. Never raises."""
    return shared_meter().read(own_process_tree())


def install_gpu_report(kernel: Any, meter: GpuMeter | None = None) -> None:
    """Make ``kernel`` (an ipykernel ``Kernel``) answer ``bf_gpu_request`` on its control channel."""
    gpu_meter = meter or shared_meter()

    def handle(stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        reading = gpu_meter.read(own_process_tree())
        content = {"gpu": None if reading is None else reading.to_json()}
        kernel.session.send(stream, GPU_REPLY, content, parent, ident)

    kernel.control_handlers[GPU_REQUEST] = handle
