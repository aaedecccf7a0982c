"""GPU memory of the training process, when the framework can tell, and the slice's limit.

Asked of the backend Keras runs on (TensorFlow, JAX or PyTorch), only when that framework is
already imported (this never imports one). The limit is the slice's memory per GPU, which
``bitfusion run``/``bitfusion-sim`` put in ``$BF_GPU_MEMORY_MIB``, else what the framework reports.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["GPU_MEMORY_ENV", "GpuMemory", "read_gpu_memory"]

GPU_MEMORY_ENV = "BF_GPU_MEMORY_MIB"
_MIB = 1024 * 1024

GpuMemory = tuple[float | None, float | None]  # (used MiB, limit MiB)


def read_gpu_memory(backend: str | None = None) -> GpuMemory:
    """(used, limit) in MiB of the first GPU, each None when unknown. Never raises."""
    limit = _slice_limit()
    used: float | None = None
    framework_limit: float | None = None
    try:
        if backend in (None, "jax") and "jax" in sys.modules:
            used, framework_limit = _jax()
        elif backend in (None, "tensorflow") and "tensorflow" in sys.modules:
            used = _tensorflow()
        elif backend in (None, "torch") and "torch" in sys.modules:
            used, framework_limit = _torch()
    except Exception:  # a framework without GPUs or with another API version: unknown, not fatal
        used = None
    return used, limit if limit is not None else framework_limit


def _slice_limit() -> float | None:
    try:
        value = float(os.environ.get(GPU_MEMORY_ENV, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _jax() -> GpuMemory:
    jax: Any = sys.modules["jax"]
    devices = [d for d in jax.local_devices() if d.platform == "gpu"]
    if not devices:
        return None, None
    stats = devices[0].memory_stats() or {}
    used = stats.get("bytes_in_use")
    limit = stats.get("bytes_limit")
    return (
        None if used is None else used / _MIB,
        None if limit is None else limit / _MIB,
    )


def _tensorflow() -> float | None:
    tf: Any = sys.modules["tensorflow"]
    if not tf.config.list_logical_devices("GPU"):
        return None
    return float(tf.config.experimental.get_memory_info("GPU:0")["current"]) / _MIB


def _torch() -> GpuMemory:
    torch: Any = sys.modules["torch"]
    if not torch.cuda.is_available():
        return None, None
    total = torch.cuda.get_device_properties(0).total_memory / _MIB
    return torch.cuda.memory_allocated(0) / _MIB, total
