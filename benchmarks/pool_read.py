"""What reading the GPU pool costs per backend: the pure pool functions over a synthetic cluster of
50 nodes × 8 GPUs with 400 running GPU pods (the figure ``GET pool`` adds on top of its two list
calls; target p50 < 50 ms uncached). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/pool_read.py [--nodes 50] [--gpus 8] [--pods 400] [--repeats 200]

Objects are shaped as each stack publishes them: Bitfusion's ``bitfusion.io/gpu`` units; HAMi's
``hami.io/node-nvidia-register`` annotation (v2.10 JSON) and pods' ``hami.io/vgpu-devices-allocated``;
NVIDIA's ``nvidia.com/gpu`` and MIG resources with GFD labels. Each read includes the JSON a
handler would write (``Pool.to_json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bf_jupyter.backends import get_backend

Json = dict[str, Any]


def cluster(backend: str, nodes: int, gpus: int, pods: int) -> tuple[list[Json], list[Json]]:
    """Synthetic nodes and running pods for ``backend``, pods spread round-robin over the GPUs."""
    node_objs: list[Json] = []
    for n in range(nodes):
        name = f"gpu-node-{n:03d}"
        labels: dict[str, str] = {"kubernetes.io/hostname": name}
        annotations: dict[str, str] = {}
        allocatable: dict[str, str] = {"cpu": "64", "memory": "512Gi", "pods": "110"}
        if backend == "bitfusion":
            allocatable["bitfusion.io/gpu"] = str(100 * gpus)
        elif backend == "hami":
            allocatable["nvidia.com/gpu"] = str(10 * gpus)
            annotations["hami.io/node-nvidia-register"] = json.dumps(
                [
                    {
                        "id": f"GPU-{n:03d}-{g}",
                        "index": g,
                        "count": 10,
                        "devmem": 81920,
                        "devcore": 100,
                        "type": "NVIDIA-A100-SXM4-80GB",
                        "numa": 0,
                        "mode": "hami-core",
                        "health": True,
                    }
                    for g in range(gpus)
                ]
            )
        else:
            allocatable["nvidia.com/gpu"] = str(gpus // 2)
            allocatable["nvidia.com/mig-1g.10gb"] = str(7 * (gpus - gpus // 2))
            labels |= {
                "nvidia.com/gpu.count": str(gpus),
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
                "nvidia.com/gpu.memory": "81920",
                "nvidia.com/mig.strategy": "mixed",
            }
        node_objs.append(
            {
                "metadata": {"name": name, "labels": labels, "annotations": annotations},
                "status": {"allocatable": allocatable},
            }
        )
    pod_objs = []
    for p in range(pods):
        n, g = p % nodes, (p // nodes) % gpus
        limits: dict[str, str] = {"cpu": "1", "memory": "4Gi"}
        annotations = {}
        if backend == "bitfusion":
            limits["bitfusion.io/gpu"] = "50"
        elif backend == "hami":
            limits |= {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8192"}
            annotations["hami.io/vgpu-devices-allocated"] = f"GPU-{n:03d}-{g},NVIDIA,8192,30:;"
        else:
            limits["nvidia.com/mig-1g.10gb" if p % 2 else "nvidia.com/gpu"] = "1"
        pod_objs.append(
            {
                "metadata": {"name": f"kernel-{p}", "annotations": annotations},
                "spec": {
                    "nodeName": f"gpu-node-{n:03d}",
                    "containers": [{"name": "kernel", "resources": {"limits": limits}}],
                },
            }
        )
    return node_objs, pod_objs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--pods", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(
        f"pool read: {args.nodes} nodes × {args.gpus} GPUs, {args.pods} running GPU pods, "
        f"{args.repeats} reads per backend (pure functions + to_json)"
    )
    for name in ("bitfusion", "hami", "nvidia"):
        backend = get_backend(name)
        nodes, pods = cluster(name, args.nodes, args.gpus, args.pods)
        samples = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            backend.read_pool(nodes, pods).to_json()
            samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        p50 = statistics.median(samples)
        p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
        verdict = "meets" if p50 < 50 else "MISSES"
        print(f"  {name:<10} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   ({verdict} p50 < 50 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
