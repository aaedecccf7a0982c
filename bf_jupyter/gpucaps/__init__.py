"""Slices that hold on local GPUs: cap each framework at its share before it takes the GPU.

Without Bitfusion (``bitfusion-sim`` leasing this machine's GPUs) nothing stops a process on
``1x50%`` from taking the whole GPU, so the lease's environment caps the frameworks at start:
JAX through ``XLA_PYTHON_CLIENT_MEM_FRACTION``; TensorFlow (a logical device with a memory limit)
and PyTorch (a per-process memory fraction) through a post-import hook that a ``sitecustomize`` put
first on ``PYTHONPATH`` installs in every Python process of the lease (the kernel, ``%bitfusion
run`` scripts, their children). A framework that ignores the cap is caught by the GPU meter
(``over_share``), not here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["FRACTION_ENV", "LIMIT_ENV", "SITE_DIR", "cap_environment"]

FRACTION_ENV = "BF_GPU_MEMORY_FRACTION"
LIMIT_ENV = "BF_GPU_MEMORY_MIB"
SITE_DIR = Path(__file__).parent / "site"


def cap_environment(
    base: Mapping[str, str], *, fraction: float, per_gpu_mib: int
) -> dict[str, str]:
    """The variables that cap frameworks at ``fraction`` of each GPU (``per_gpu_mib`` MiB), for
    a command's environment ``base`` (its ``PYTHONPATH`` kept, after the hook's directory).
    Raises ``ValueError`` for a fraction outside (0, 1] or a limit below 1 MiB."""
    if not 0 < fraction <= 1:
        raise ValueError(
            f"GPU memory fraction {fraction!r} is out of range: use a number in (0, 1]"
        )
    if per_gpu_mib < 1:
        raise ValueError(f"GPU memory limit {per_gpu_mib!r} MiB is out of range: use 1 MiB or more")
    rounded = f"{math.floor(fraction * 1000) / 1000:g}"  # down: a capped framework stays inside
    path = [str(SITE_DIR), *filter(None, base.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        FRACTION_ENV: rounded,
        LIMIT_ENV: str(per_gpu_mib),
        "XLA_PYTHON_CLIENT_MEM_FRACTION": rounded,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(path)),
    }
