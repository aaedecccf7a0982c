"""How much ``bitfusion-sim run -n 1 -p 0.5 -- true`` costs over ``true``.

Each run is a fresh process, started by this script the same way for both commands; runs are
interleaved so that background load hits both alike. Prints the medians side by side (target: the
simulator adds at most 100 ms of wall-clock time), and the CPU time of each run (user + system,
the process and what it waited for), which shared, busy machines inflate far less than wall time. The pool is a fresh virtual one in a temporary BF_SIM_HOME unless
``--pool auto`` asks for this machine's GPUs. Python's bytecode cache is allowed to be written
(a pip install compiles it too), and warm-up runs fill it before anything is timed.

    python benchmarks/sim_overhead.py [--runs 30] [--pool virtual|auto]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

TARGET_MS = 100.0
WARM_UP_RUNS = 3


def _sim_argv() -> list[str]:
    script = Path(sys.executable).with_name("bitfusion-sim")
    if script.is_file():
        return [str(script)]
    found = shutil.which("bitfusion-sim")
    return [found] if found else [sys.executable, "-m", "bf_jupyter.bitfusion.sim"]


def _measure(argv: Sequence[str], env: Mapping[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of one run of ``argv``; exits when it fails."""
    quiet = os.open(os.devnull, os.O_RDWR)
    try:
        start = time.perf_counter_ns()
        pid = os.posix_spawn(
            argv[0],
            list(argv),
            dict(env),
            file_actions=[(os.POSIX_SPAWN_DUP2, quiet, fd) for fd in (0, 1, 2)],
        )
        _, status, usage = os.wait4(pid, 0)
        wall = (time.perf_counter_ns() - start) / 1e6
    finally:
        os.close(quiet)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed with {os.waitstatus_to_exitcode(status)}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def _row(label: str, samples: list[tuple[float, float]]) -> str:
    wall = [w for w, _ in samples]
    cpu = [c for _, c in samples]
    deciles = statistics.quantiles(wall, n=10)
    return (
        f"{label:<46} {statistics.median(wall):8.1f} ms {deciles[0]:8.1f} ms {deciles[-1]:8.1f} ms"
        f" {statistics.median(cpu):8.1f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30, help="runs of each command (at least 20)")
    parser.add_argument("--pool", choices=("virtual", "auto"), default="virtual")
    args = parser.parse_args(argv)
    runs = max(20, args.runs)
    true = shutil.which("true") or "/bin/true"
    sim = [*_sim_argv(), "run", "-n", "1", "-p", "0.5", "--", true]
    python = [sys.executable, "-c", "pass"]
    with tempfile.TemporaryDirectory(prefix="bf-sim-bench-") as home:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update({"BF_SIM_HOME": home, "BF_SIM_POOL": args.pool})
        for _ in range(WARM_UP_RUNS):
            _measure(sim, env)
            _measure(python, env)
        times: dict[str, list[tuple[float, float]]] = {"true": [], "python": [], "sim": []}
        for _ in range(runs):  # interleaved: drift in machine load affects all three alike
            times["true"].append(_measure([true], env))
            times["python"].append(_measure(python, env))
            times["sim"].append(_measure(sim, env))

    def median(name: str, column: int) -> float:
        return statistics.median(sample[column] for sample in times[name])

    overhead = median("sim", 0) - median("true", 0)
    cpu_overhead = median("sim", 1) - median("true", 1)
    verdict = "met" if overhead <= TARGET_MS else "NOT met"
    print(f"bitfusion-sim overhead: {runs} runs of each, one process per run, interleaved;")
    print(
        f"pool: {args.pool}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs;"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'command':<46} {'median':>11} {'p10':>11} {'p90':>11} {'CPU median':>11}")
    print(_row("true", times["true"]))
    print(_row("bitfusion-sim run -n 1 -p 0.5 -- true", times["sim"]))
    print(_row("python -c pass (interpreter start, reference)", times["python"]))
    print(
        f"overhead (median sim - median true): {overhead:.1f} ms wall, {cpu_overhead:.1f} ms CPU;"
        f" target <= {TARGET_MS:.0f} ms wall: {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
