"""A ``pynvml`` stand-in for whole-server tests: one 80 GiB GPU on which every running
``python -m ipykernel_launcher`` holds ``KERNEL_MIB`` of memory at 0 % utilisation (so the meter
draws a bar and the idle flag comes up).

A test puts a ``pynvml.py`` made of this module's namespace on the server's ``PYTHONPATH`` (see
``install_nvml_on_kernels``) and a ``nvidia-smi`` that reports the same GPU on its ``PATH``, so that
``bitfusion-sim``'s local pool leases it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil

from tests.support.fake_nvml import FakeGpu, FakeNvml

__all__ = ["GPU_MIB", "GPU_NAME", "KERNEL_MIB", "install_nvml_on_kernels", "pynvml_namespace"]

GPU_NAME = "NVIDIA H100 80GB HBM3"
GPU_MIB = 81559
KERNEL_MIB = 6144


class _KernelsOnOneGpu(FakeNvml):
    """Re-reads the running kernels each time a device handle is taken."""

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        gpu = super().nvmlDeviceGetHandleByIndex(index)
        gpu.processes.clear()
        gpu.sm_util.clear()
        for process in psutil.process_iter(["pid", "cmdline"]):
            if (process.info["cmdline"] or [])[1:3] == ["-m", "ipykernel_launcher"]:
                gpu.run(process.info["pid"], KERNEL_MIB, sm_util=0)
        return gpu


def pynvml_namespace() -> dict[str, Any]:
    """What the ``pynvml`` shim exports: NVML's functions, error type and codes."""
    nvml = _KernelsOnOneGpu([FakeGpu(total_mib=GPU_MIB)])
    return {n: getattr(nvml, n) for n in dir(nvml) if n.startswith(("nvml", "NVML"))}


def install_nvml_on_kernels(folder: Path, env: dict[str, Any]) -> None:
    """Write the ``pynvml`` shim and the ``nvidia-smi`` script into ``folder`` and point ``env``'s
    ``PYTHONPATH`` and ``PATH`` at them (the repository root too, for this module)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pynvml.py").write_text(
        "from tests.support.nvml_on_kernels import pynvml_namespace\n"
        "globals().update(pynvml_namespace())\n"
    )
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '0, {GPU_NAME}, {GPU_MIB} MiB'\n")
    smi.chmod(0o755)
    root = Path(__file__).parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(root)])
    env["PATH"] = os.pathsep.join([str(folder), env.get("PATH", "")])
