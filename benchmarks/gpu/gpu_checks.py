"""Issue 17's GPU checks, prepared for a session with a GPU; ``--check`` runs them dry here.

    python benchmarks/gpu/gpu_checks.py                 # on the GPU machine (JAX present)
    .venv/bin/python benchmarks/gpu/gpu_checks.py --check   # dry, on CPU, with the NVML stand-in

1. **Slices hold**: two processes, each under ``bitfusion-sim run -n 1 -p 0.5`` (the embedded pool
   leasing this machine's GPU 0, so the lease's framework caps apply), allocate JAX arrays of
   256 MiB until refused: each must get close to its share (≥ 80 %) and no more (≤ 100 % + 5 %),
   and end with a clean RESOURCE_EXHAUSTED, not a crash.
2. **Meter vs nvidia-smi**: while they hold their memory, the meter's per-process reading
   (``NvmlProbe``) and ``nvidia-smi --query-compute-apps=pid,used_memory`` agree within 5 %.
3. **VGG19 throughput**: ``benchmarks/gpu/run_vgg19_throughput.sh --batch-sizes 128`` (224 px,
   bf16, Keras 3 on JAX): images/s and MFU; target ≥ 2,700 images/s on one H100/H200.

Needs on the GPU machine: JAX with CUDA, ``nvidia-ml-py`` and Keras from benchmarks/gpu/wheels
(``fetch_wheels.sh`` downloads them here; the device tool carries the folder), psutil and PyYAML
for bitfusion-sim. Prints one JSON object with every figure; exit 1 if a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# Run under bitfusion-sim: allocate 256 MiB blocks until JAX refuses, print how far it got.
ALLOCATE = """
import json, sys, time
try:
    import jax, jax.numpy as jnp
    blocks, err = [], None
    try:
        while True:
            blocks.append(jnp.ones((64, 1024, 1024), dtype=jnp.float32).block_until_ready())
    except Exception as error:  # XlaRuntimeError RESOURCE_EXHAUSTED
        err = type(error).__name__ + ": " + str(error).splitlines()[0][:120]
    print(json.dumps({"allocated_mib": 256 * len(blocks), "refusal": err}), flush=True)
    time.sleep(float(sys.argv[1]))
except Exception as error:
    print(json.dumps({"allocated_mib": 0, "refusal": None, "crash": repr(error)}), flush=True)
    sys.exit(3)
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="dry run on CPU with the stand-ins")
    parser.add_argument("--skip-vgg19", action="store_true")
    parser.add_argument("--hold-seconds", type=float, default=20.0)
    return parser.parse_args()


def gpu_total_mib() -> int:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", "0"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return int(out.split()[0])


def smi_by_pid() -> dict[int, int]:
    out = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    rows = [line.split(",") for line in out.splitlines() if line.strip()]
    return {int(pid): int(mib) for pid, mib in rows}


def slices_hold(hold: float, home: Path) -> tuple[dict[str, Any], list[subprocess.Popen[str]]]:
    env = {**os.environ, "BF_SIM_POOL": "local", "BF_SIM_HOME": str(home),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    command = [sys.executable, "-m", "bf_jupyter.bitfusion.sim", "run", "-n", "1", "-p", "0.5",
               "--", sys.executable, "-c", ALLOCATE, str(hold)]  # fmt: skip
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for run in runs:
        assert run.stdout is not None
        results.append(json.loads(run.stdout.readline() or "{}"))
    total = gpu_total_mib()
    share = total // 2
    ok = all(
        r.get("refusal") and 0.8 * share <= r["allocated_mib"] <= 1.05 * share for r in results
    )
    return {"gpu_total_mib": total, "share_mib": share, "runs": results, "ok": ok}, runs


def meter_agrees(runs: list[subprocess.Popen[str]]) -> dict[str, Any]:
    from bf_jupyter.gpumeter import NvmlProbe
    from bf_jupyter.gpumeter.meter import process_tree

    smi = smi_by_pid()
    probe = NvmlProbe()
    rows = []
    for run in runs:
        pids = process_tree(run.pid)
        metered = probe.sample(pids).memory_used_mib
        reference = sum(smi.get(pid, 0) for pid in pids)
        rows.append({"meter_mib": metered, "nvidia_smi_mib": reference})
    ok = all(
        abs(r["meter_mib"] - r["nvidia_smi_mib"]) <= 0.05 * max(1, r["nvidia_smi_mib"])
        for r in rows
    )
    return {"kernels": rows, "ok": ok}


def vgg19() -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            ["bash", str(ROOT / "benchmarks/gpu/run_vgg19_throughput.sh"), "--batch-sizes", "128",
             "--json", out.name], check=True, cwd=ROOT, timeout=540,
        )  # fmt: skip
        figures: dict[str, Any] = json.loads(Path(out.name).read_text())
    return figures


def dry_run() -> dict[str, Any]:
    """The same code paths on CPU: the meter on the stand-in against a stand-in nvidia-smi, the
    caps on stand-in frameworks, the VGG19 command line."""
    from bf_jupyter.gpucaps import cap_environment
    from bf_jupyter.gpumeter import NvmlProbe
    from tests.support.fake_nvml import FakeGpu, FakeNvml

    nvml = FakeNvml([FakeGpu(total_mib=81559)])
    nvml.gpus[0].run(4242, 40000, sm_util=80)
    metered = NvmlProbe(nvml).sample([4242]).memory_used_mib
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "torch.py").write_text(
            "calls = []\nclass cuda:\n    is_available = staticmethod(lambda: True)\n"
            "    device_count = staticmethod(lambda: 1)\n"
            "    set_per_process_memory_fraction = staticmethod(lambda f, d: calls.append(f))\n"
        )
        base = {**os.environ, "PYTHONPATH": f"{scratch}{os.pathsep}{ROOT}"}
        env = {**base, **cap_environment(base, fraction=0.5, per_gpu_mib=40779)}
        capped = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.calls)"],
            env=env, capture_output=True, text=True, check=False, timeout=60,
        ).stdout.strip()  # fmt: skip
    script = ROOT / "benchmarks/gpu/run_vgg19_throughput.sh"
    return {
        "meter": {"meter_mib": metered, "stand_in_mib": 40000, "ok": metered == 40000},
        "caps": {"torch_fraction_calls": capped, "ok": capped == "[0.5]"},
        "vgg19": {
            "command": f"bash {script.relative_to(ROOT)} --batch-sizes 128",
            "ok": script.is_file(),
        },
    }


def ensure_pynvml() -> None:
    """nvidia-ml-py from the carried wheels when the machine lacks it (no internet there)."""
    try:
        import pynvml  # noqa: F401
    except ImportError:
        site = Path(tempfile.gettempdir()) / "bf-gpu-checks-site"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
             "--target", str(site), "--find-links", str(ROOT / "benchmarks/gpu/wheels"),
             "nvidia-ml-py"], check=True, timeout=120,
        )  # fmt: skip
        sys.path.insert(0, str(site))


def main() -> int:
    args = parse_args()
    if args.check:
        report = dry_run()
    else:
        ensure_pynvml()
        report = {}
        with tempfile.TemporaryDirectory(prefix="bf-gpu-checks-") as home:
            held, runs = slices_hold(args.hold_seconds, Path(home))
            report["slices_hold"] = held
            time.sleep(2)  # both hold their memory now (they sleep after allocating)
            try:
                report["meter_vs_nvidia_smi"] = meter_agrees(runs)
            finally:
                for run in runs:
                    run.wait(timeout=args.hold_seconds + 60)
        if not args.skip_vgg19:
            report["vgg19"] = vgg19()
            report["vgg19"]["ok"] = True
    print(json.dumps(report, indent=2))
    return 0 if all(part.get("ok") for part in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
