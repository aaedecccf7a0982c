"""The per-kernel GPU meter: how much of its GPU slice a kernel's processes use, and for how long
the GPU has sat idle.

Read from NVML (``nvidia-ml-py``, imported only when a reading is taken) per process: the server
samples a local kernel's process tree, a kernel pod samples its own and answers the server over the
kernel's control channel. A reading that cannot be taken is ``None`` ("no GPU reading"), never zeros
made up for a GPU nobody can see. Imports nothing of Jupyter, so the kernel side, the launcher and
the server share it.
"""

from __future__ import annotations

from bf_jupyter.gpumeter.meter import DEFAULT_INTERVAL, GpuMeter
from bf_jupyter.gpumeter.nvml import NvmlProbe, NvmlUnavailable, ProcessUsage
from bf_jupyter.gpumeter.reading import NO_READING, GpuReading

__all__ = [
    "DEFAULT_INTERVAL",
    "NO_READING",
    "GpuMeter",
    "GpuReading",
    "NvmlProbe",
    "NvmlUnavailable",
    "ProcessUsage",
]
