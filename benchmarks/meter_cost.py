"""What the GPU meter costs inside a kernel: CPU of one core at the default interval.

    .venv/bin/python benchmarks/meter_cost.py [--requests 400] [--idle-seconds 10]

Starts a real kernel through the in-pod launcher (the meter's handler on the control channel),
with NVML given by the stand-in (tests/support/fake_nvml: this machine has no GPU; on a GPU
machine, pass --real-nvml to use nvidia-ml-py). Measures the kernel process's CPU time
(user + system, psutil) over --idle-seconds with nobody asking (the baseline), then while the
server's question (``bf_gpu_request``) is sent --requests times back to back, each a full
reading (the meter's own rate limit set to 0). Cost = CPU per answered request ÷ the default
interval (5 s). Target: ≤ 0.5 % of one core. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bf_jupyter.gpumeter import DEFAULT_INTERVAL  # noqa: E402
from bf_jupyter.kernels.kernel_channels import await_kernel_info, request_gpu_reading  # noqa: E402
from bf_jupyter.kernels.launcher import format_ports  # noqa: E402

ADDRESS = "127.0.0.71"
PORTS = {"shell": 53300, "iopub": 53301, "stdin": 53302, "control": 53303, "hb": 53304}
KEY = "meter-cost-key"

# NVML stand-in for the kernel (this process on one GPU), and the meter's rate limit off so that
# every request is a full reading.
FAKE_PYNVML = """
import os
from tests.support.fake_nvml import FakeGpu, FakeNvml
_nvml = FakeNvml([FakeGpu(total_mib=16384)])
_nvml.gpus[0].run(os.getpid(), 1234, sm_util=20)
globals().update({n: getattr(_nvml, n) for n in dir(_nvml) if n.startswith(("nvml", "NVML"))})
"""
NO_RATE_LIMIT = """
import bf_jupyter.gpumeter.meter as meter
_init = meter.GpuMeter.__init__
def _unlimited(self, *args, **kwargs):
    kwargs["interval"] = 0.0
    _init(self, *args, **kwargs)
meter.GpuMeter.__init__ = _unlimited
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--real-nvml", action="store_true", help="use nvidia-ml-py (a GPU machine)")
    return parser.parse_args()


def cpu_seconds(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(args: argparse.Namespace, stand_in: Path) -> dict[str, float]:
    import psutil

    (stand_in / "sitecustomize.py").write_text(NO_RATE_LIMIT)
    if not args.real_nvml:
        (stand_in / "pynvml.py").write_text(FAKE_PYNVML)
    env = {
        **os.environ,
        "BF_KERNEL_KEY": KEY,
        "BF_KERNEL_IP": ADDRESS,
        "BF_SLICE": "1x50%",
        "PYTHONPATH": f"{stand_in}{os.pathsep}{ROOT}",
    }
    kernel = subprocess.Popen(
        [sys.executable, "-m", "bf_jupyter.kernels.launcher", "--ports", format_ports(PORTS)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    info: dict[str, Any] = {
        "ip": ADDRESS, "transport": "tcp", "key": KEY.encode(), "signature_scheme": "hmac-sha256",
        **{f"{name}_port": port for name, port in PORTS.items()},
    }  # fmt: skip
    try:
        await asyncio.wait_for(await_kernel_info(info), 60)
        process = psutil.Process(kernel.pid)
        first = await request_gpu_reading(info, timeout=30)  # warm: imports, NVML init
        await asyncio.sleep(1.0)
        before = cpu_seconds(process)
        await asyncio.sleep(args.idle_seconds)
        idle_rate = (cpu_seconds(process) - before) / args.idle_seconds
        before, started = cpu_seconds(process), time.monotonic()
        answered = 0
        for _ in range(args.requests):
            if await request_gpu_reading(info, timeout=30) is not None:
                answered += 1
        elapsed = time.monotonic() - started
        busy = cpu_seconds(process) - before - idle_rate * elapsed
    finally:
        kernel.kill()
        kernel.wait()
    per_request = busy / max(1, answered)
    return {
        "first_reading": float(bool(first and first.get("gpu"))),
        "answered": answered,
        "idle_cpu_percent": 100 * idle_rate,
        "cpu_ms_per_request": 1000 * per_request,
        "cost_percent_at_default_interval": 100 * per_request / DEFAULT_INTERVAL,
    }


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bf-meter-cost-") as scratch:
        figures = asyncio.run(measure(args, Path(scratch)))
    nvml = "nvidia-ml-py" if args.real_nvml else "the NVML stand-in"
    print(f"GPU meter in a kernel ({nvml}), {figures['answered']:.0f} readings answered")
    print(f"  kernel idle, nobody asking:        {figures['idle_cpu_percent']:.3f} % of one core")
    print(f"  CPU per reading (control channel):  {figures['cpu_ms_per_request']:.3f} ms")
    print(
        f"  cost at the default interval ({DEFAULT_INTERVAL:g} s): "
        f"{figures['cost_percent_at_default_interval']:.4f} % of one core (target ≤ 0.5 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
