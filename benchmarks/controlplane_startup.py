"""How long the e2e test cluster's control plane takes from the cached binaries to ready: etcd,
kube-apiserver ``/readyz``, kube-scheduler and kube-controller-manager ``/healthz``, the ``default``
ServiceAccount created (what ``ControlPlane.start()`` waits for), and how long ``stop()`` takes.
Prints figures and the load average (the machine is shared); asserts nothing.

    make cluster-binaries && .venv/bin/python benchmarks/controlplane_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.cluster.binaries import ControlPlaneBinaries

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def time_once(binaries: ControlPlaneBinaries) -> tuple[float, float]:
    from tests.cluster.control_plane import ControlPlane

    with tempfile.TemporaryDirectory(prefix="bf-controlplane-") as folder:
        plane = ControlPlane(Path(folder) / "plane", binaries)
        begin = time.perf_counter()
        plane.start()
        started = time.perf_counter()
        plane.stop()
        return started - begin, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from tests.cluster.binaries import find_binaries

    binaries = find_binaries()
    print(f"binaries: {binaries.kube_apiserver.parent}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs = [time_once(binaries) for _ in range(args.runs)]
    starts, stops = [run[0] for run in runs], [run[1] for run in runs]
    print(
        f"{'control plane':16} {'start median':>13} {'start max':>10} {'stop median':>12}  ({args.runs} runs)"
    )
    print(
        f"{'to ready':16} {statistics.median(starts):12.2f}s {max(starts):9.2f}s "
        f"{statistics.median(stops):11.2f}s"
    )
    print(f"each start: {', '.join(f'{start:.2f}s' for start in starts)}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
