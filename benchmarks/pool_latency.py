"""GET {base_url}/bitfusion/api/pool latency, as a browser tab sees it.

Starts ``jupyter server`` with bf-jupyter (local backend) and times sequential requests over one
keep-alive connection: first with the default cache (what tabs get at rest), then with the cache
off (every request runs the Bitfusion client's ``list_gpus``). Prints mean, p50, p95 and max.

    .venv/bin/python benchmarks/pool_latency.py [--requests 200] [--stand-in-pool]

With ``--test-cluster`` the server runs the kubernetes backend on the e2e test cluster's real
control plane (``tests/cluster``, from the binaries ``make cluster-binaries`` caches), as its
cluster-admin: ``--nodes`` GPU Nodes created through the API with ``bitfusion.io/gpu`` in their
status (no kubelet: the status is patched), and ``--pods`` kernel pods bound to them
(``spec.nodeName``; they stay Pending, which is all listing needs), so GET pool lists real nodes and
pods from a real kube-apiserver.

Target: < 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_session import running_lab


def measure(url: str, token: str, count: int) -> list[float]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    headers = {"Authorization": f"token {token}"}
    timings = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("GET", "/bitfusion/api/pool", headers=headers)
            response = connection.getresponse()
            body = response.read()
            timings.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"GET pool answered {response.status}: {body[:300]!r}")
    finally:
        connection.close()
    return timings


def describe(url: str, token: str) -> str:
    """What GET pool said, in one line (proof the figures are for a real answer)."""
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{url}/bitfusion/api/pool", headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        pool = json.load(response)
    used = [n["used_units"] for n in pool["nodes"]]
    return (
        f"{len(pool['servers'])} servers, {pool['total_gpus']} GPUs, {len(pool['nodes'])} nodes "
        f"(requested units {used}), simulated={pool['simulated']}, warnings={pool['warnings']}"
    )


def report(label: str, timings: list[float]) -> None:
    ordered = sorted(timings)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(
        f"{label:<34} n={len(timings):<4} mean={statistics.fmean(timings):7.2f} ms  "
        f"p50={statistics.median(timings):7.2f} ms  p95={p95:7.2f} ms  max={ordered[-1]:7.2f} ms"
    )


GPU_NODE_STATUS = {
    "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "bitfusion.io/gpu": "400"},
    "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "bitfusion.io/gpu": "400"},
}


@contextmanager
def test_cluster(nodes: int, pods: int) -> Iterator[Path]:
    """The test cluster's control plane with ``nodes`` GPU nodes (4 GPUs each) and ``pods`` kernel
    pods holding half a GPU each; yields its admin kubeconfig."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bf_jupyter.kubeapi import KubeApi
    from tests.cluster.control_plane import ControlPlane

    with (
        tempfile.TemporaryDirectory(prefix="bf-pool-bench-") as folder,
        ControlPlane(Path(folder) / "plane") as plane,
    ):
        api = KubeApi.connect(kubeconfig=str(plane.kubeconfig))
        try:
            for i in range(nodes):
                api.create("Node", {"metadata": {"name": f"gpu-{i}"}})
                api.patch_status("Node", f"gpu-{i}", {"status": GPU_NODE_STATUS})
            for i in range(pods):
                container = {
                    "name": "kernel",
                    "image": "python:3.11",
                    "command": ["sleep", "600"],
                    "resources": {
                        "requests": {"bitfusion.io/gpu": "50"},
                        "limits": {"bitfusion.io/gpu": "50"},
                    },
                }
                body = {
                    "metadata": {"name": f"kernel-{i}"},
                    "spec": {"nodeName": f"gpu-{i % nodes}", "containers": [container]},
                }
                api.create("Pod", body, "default")
        finally:
            api.close()
        yield plane.kubeconfig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--stand-in-pool",
        action="store_true",
        help="a fixed list_gpus listing instead of the resolved client",
    )
    parser.add_argument(
        "--test-cluster",
        action="store_true",
        help="the kubernetes backend on the test cluster's real control plane (tests/cluster)",
    )
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--pods", type=int, default=20)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        backend, env, source = "local", {}, "list_gpus"
        if args.test_cluster:
            kubeconfig = stack.enter_context(test_cluster(args.nodes, args.pods))
            backend, env, source = "kubernetes", {"KUBECONFIG": str(kubeconfig)}, "nodes + pods"
            print(f"test cluster: {args.nodes} GPU nodes, {args.pods} kernel pods (Pending, bound)")
        for label, ttl in (
            (f"GET pool ({backend}), cache on (5 s TTL)", 5.0),
            (f"GET pool ({backend}), cache off ({source})", 0.0),
        ):
            with running_lab(
                server_only=True,
                stand_in_pool=args.stand_in_pool,
                extension={"cache_ttl": ttl, "namespace": "default"},
                backend=backend,
                env_extra=env,
            ) as lab:
                measure(lab.url, lab.token, 5)  # warm up: first import paths, first backend call
                count = args.requests if ttl else max(20, args.requests // 5)
                report(label, measure(lab.url, lab.token, count))
                print(f"  answer: {describe(lab.url, lab.token)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
