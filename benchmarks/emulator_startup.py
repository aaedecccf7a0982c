"""How long the e2e fixtures take to start and stop: the bare emulated cluster, and the full stack
(emulated cluster + our webhook + device plugin + bitfusion-sim). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/emulator_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def time_bare() -> tuple[float, float]:
    from tests.emulator.cluster import EmulatedCluster

    begin = time.perf_counter()
    cluster = EmulatedCluster().start()
    started = time.perf_counter()
    cluster.stop()
    return started - begin, time.perf_counter() - started


def time_stack() -> tuple[float, float]:
    from tests.e2e.stack import BitfusionStack

    stack = BitfusionStack()
    begin = time.perf_counter()
    stack.start()
    started = time.perf_counter()
    stack.stop()
    return started - begin, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from tests.e2e.stack import missing_parts

    cases = [("bare emulated cluster", time_bare)]
    if missing_parts():
        print(f"full stack skipped: missing {', '.join(missing_parts())}")
    else:
        cases.append(("full e2e stack (webhook + device plugin + sim)", time_stack))
    print(
        f"{'fixture':48} {'start median':>13} {'start max':>10} {'stop median':>12}  ({args.runs} runs)"
    )
    for name, measure in cases:
        runs = [measure() for _ in range(args.runs)]
        starts, stops = [r[0] for r in runs], [r[1] for r in runs]
        print(
            f"{name:48} {statistics.median(starts):12.2f}s {max(starts):9.2f}s {statistics.median(stops):11.2f}s"
        )


if __name__ == "__main__":
    main()
