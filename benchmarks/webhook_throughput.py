"""Admission webhook throughput and latency: ``POST /mutate`` over TLS keep-alive, side by side with a
bare tornado TLS handler that answers ``allowed`` to the same body without reading it.

Needs Debian's ``wrk`` (``apt-get install -y wrk``) and ``taskset``; the servers are pinned to core 0
and wrk to core 1, each level of concurrency runs bare then webhook in the same run, and the figures
are wrk's own (requests/s, p50, p99). Targets: p99 ≤ 1.5 ms with 1 client; with 16 clients the
webhook keeps ≥ 0.8× the bare handler's throughput and ≤ 1.25× its p99.

    .venv/bin/python benchmarks/webhook_throughput.py [--seconds 10] [--clients 1 16 64]
        [--rounds 3] [--before TREE]

``--before TREE`` serves a second webhook from another source tree in the same run (say, main's
code before a change), so before and after meet the same machine conditions.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
P99_ONE_CLIENT_MS = 1.5
THROUGHPUT_RATIO_16 = 0.8
P99_RATIO_16 = 1.25
_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def kernel_pod_review() -> bytes:
    """A review of the pod a notebook kernel asks for: one GPU container with args and env, a sidecar."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "kernel-",
            "namespace": "team-a",
            "labels": {
                "app.kubernetes.io/name": "bf-jupyter",
                "app.kubernetes.io/component": "kernel",
                "bf-jupyter/kernel-id": "6f1c2e9a-3d4b-4c5d-9e8f-0a1b2c3d4e5f",
                "bf-jupyter/user": "ana",
            },
            "annotations": {
                "auto-management/bitfusion": "all",
                "bitfusion-client/os": "ubuntu20",
                "bitfusion-client/version": "450",
                "bitfusion-client/filter": "device.name=V100",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "kernel",
                    "image": "registry.local/bf-jupyter-kernel:0.1.0",
                    "command": ["python", "-m", "bf_jupyter.kernels.launcher"],
                    "args": ["--connection-file", "/run/kernel/connection.json", "--ip", "0.0.0.0"],
                    "env": [
                        {"name": "KERNEL_ID", "value": "6f1c2e9a"},
                        {"name": "LD_LIBRARY_PATH", "value": "/usr/local/cuda/lib64"},
                    ],
                    "resources": {
                        "limits": {
                            "bitfusion.io/gpu-amount": "1",
                            "bitfusion.io/gpu-percent": "50",
                            "cpu": "2",
                            "memory": "8Gi",
                        },
                        "requests": {"cpu": "1", "memory": "4Gi"},
                    },
                    "volumeMounts": [{"name": "connection", "mountPath": "/run/kernel"}],
                },
                {"name": "log-shipper", "image": "busybox", "command": ["tail", "-F", "/log/k"]},
            ],
            "volumes": [{"name": "connection", "secret": {"secretName": "kernel-6f1c2e9a"}}],
        },
    }
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "team-a",
            "userInfo": {
                "username": "system:serviceaccount:jhub:hub",
                "groups": ["system:authenticated"],
            },
            "object": pod,
            "dryRun": False,
        },
    }
    return json.dumps(review).encode()


def serve_bare(port: int, cert: str, key: str) -> None:
    """The baseline: tornado over the same TLS settings, answering ``allowed`` without reading the body."""
    import asyncio

    import tornado.httpserver
    import tornado.web

    from bf_jupyter.cluster.https_service import tls_context

    reply = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "", "allowed": True},
        }
    ).encode()

    class Bare(tornado.web.RequestHandler):
        def post(self) -> None:
            self.set_header("Content-Type", "application/json")
            self.finish(reply)

    async def main() -> None:
        app = tornado.web.Application([(r"/mutate", Bare)], log_function=lambda handler: None)
        server = tornado.httpserver.HTTPServer(app, ssl_options=tls_context(cert, key))
        server.listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(main())


def in_process_cost(body: bytes, rounds: int = 3000) -> float:
    """CPU µs one ``/mutate`` review costs the admission service itself (no HTTP, no TLS)."""
    from bf_jupyter.cluster.webhook.cluster_view import NoClusterFacts
    from bf_jupyter.cluster.webhook.config import WebhookConfig
    from bf_jupyter.cluster.webhook.service import AdmissionService

    service = AdmissionService(WebhookConfig(), NoClusterFacts("benchmark"))
    for _ in range(300):
        service.mutate(body)
    started = time.process_time()
    for _ in range(rounds):
        service.mutate(body)
    return (time.process_time() - started) / rounds * 1e6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(
    port: int, context: ssl.SSLContext, body: bytes, deadline: float = 30
) -> dict[str, object]:
    """Wait until the server answers /mutate; return its reply to ``body``."""
    stop = time.monotonic() + deadline
    while True:
        try:
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
            connection.request(
                "POST", "/mutate", body=body, headers={"Content-Type": "application/json"}
            )
            reply: dict[str, object] = json.loads(connection.getresponse().read())
            connection.close()
            return reply
        except OSError:
            if time.monotonic() > stop:
                raise
            time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(port: int, clients: int, seconds: float, script: Path, pid: int) -> dict[str, float]:
    """One wrk run pinned to core 1; returns requests/s, p50/p99 in ms and the server's CPU time per
    request in µs (robust to a busy machine, where wrk's figures also measure the neighbours)."""
    command = [
        "taskset", "-c", "1", "wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency",
        "-s", str(script), f"https://127.0.0.1:{port}/mutate",
    ]  # fmt: skip
    cpu_before = cpu_seconds(pid)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", output)
    if errors:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for label, key in (("50%", "p50"), ("99%", "p99")):
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()  # type: ignore[union-attr]
        figures[key] = float(value) * _UNITS[unit]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    figures["cpu_us"] = cpu / max(requests, 1) * 1e6
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per run (10)")
    parser.add_argument(
        "--warmup", type=float, default=2, help="unmeasured seconds before each run (2)"
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs per server and level, interleaved; the medians are printed (1)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="TREE",
        help="also serve the webhook from another source tree of bf-jupyter (e.g. "
        "`git archive main | tar -x -C /tmp/bf-main`), in the same run, as 'before'",
    )
    parser.add_argument(
        "--bare-server", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS
    )
    parser.add_argument("--service-cost", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        serve_bare(int(args.bare_server[0]), args.bare_server[1], args.bare_server[2])
        return 0
    if args.service_cost:
        print(in_process_cost(args.service_cost.read_bytes()))
        return 0
    problem = missing_prerequisite(args.before)
    if problem:
        print(problem)
        return 2
    return measure(args)


def missing_prerequisite(before: Path | None) -> str | None:
    """Why the benchmark cannot run here, or None."""
    for tool, package in (("wrk", "wrk"), ("taskset", "util-linux")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: apt-get install -y {package}"
    if (os.cpu_count() or 1) < 2:
        return "needs 2 cores: the servers run on core 0, wrk on core 1"
    if before is not None and not (before / "bf_jupyter" / "__init__.py").is_file():
        return f"--before {before} is not a bf-jupyter source tree (no bf_jupyter/__init__.py)"
    return None


def measure(args: argparse.Namespace) -> int:
    """Start the servers, run wrk against each, print the report; returns the exit status."""
    from bf_jupyter.cluster import certs

    with tempfile.TemporaryDirectory(prefix="bf-webhook-bench-") as folder:
        work = Path(folder)
        issued = certs.issue(service="bf-webhook", namespace="bf-system", extra_sans=("127.0.0.1",))
        certs.write_files(work, issued)
        cert, key = str(work / "tls.crt"), str(work / "tls.key")
        body = kernel_pod_review()
        (work / "review.json").write_bytes(body)
        script = work / "post.lua"
        script.write_text(_LUA.format(body=work / "review.json"))
        context = ssl.create_default_context(cafile=str(work / "ca.crt"))

        trees = {"webhook": REPO} | ({"before": args.before.resolve()} if args.before else {})
        ports = {name: free_port() for name in ("bare", *trees)}
        python = sys.executable
        launches = {
            "bare": ([python, __file__, "--bare-server", str(ports["bare"]), cert, key], REPO)
        }
        for name, tree in trees.items():
            command = [
                python, "-m", "bf_jupyter", "webhook", "--port", str(ports[name]),
                "--address", "127.0.0.1", "--tls-cert", cert, "--tls-key", key,
                "--no-cluster-checks", "--log-level", "WARNING", "--drain-seconds", "0",
            ]  # fmt: skip
            launches[name] = (command, tree)
        servers = {
            name: subprocess.Popen(["taskset", "-c", "0", *command], cwd=tree, env=_env(tree))
            for name, (command, tree) in launches.items()
        }
        try:
            for name in trees:
                response = wait_ready(ports[name], context, body)["response"]
                assert isinstance(response, dict) and response.get("patch"), (
                    f"{name} did not patch: {response}"
                )
            wait_ready(ports["bare"], context, body)
            runs: dict[tuple[str, int], list[dict[str, float]]] = {}
            for clients in args.clients:
                for _ in range(args.rounds):
                    for name, server in servers.items():
                        run_wrk(ports[name], clients, args.warmup, script, server.pid)
                        runs.setdefault((name, clients), []).append(
                            run_wrk(ports[name], clients, args.seconds, script, server.pid)
                        )
        finally:
            for server in servers.values():
                server.terminate()
            for server in servers.values():
                server.wait(10)
        costs = {name: _service_cost(tree, work / "review.json") for name, tree in trees.items()}
    results = {
        run: {figure: statistics.median(r[figure] for r in figures) for figure in figures[0]}
        for run, figures in runs.items()
    }
    return report(results, args.clients, len(body), costs, args.rounds)


def _env(tree: Path) -> dict[str, str]:
    """The environment that makes ``python -m bf_jupyter`` import the package from ``tree``."""
    return {**os.environ, "PYTHONPATH": str(tree)}


def _service_cost(tree: Path, body: Path) -> float:
    """``in_process_cost`` of the admission service in ``tree``, in a process of its own."""
    command = [sys.executable, str(Path(__file__).resolve()), "--service-cost", str(body)]
    output = subprocess.run(
        ["taskset", "-c", "0", *command], cwd=tree, env=_env(tree), capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip
    return float(output)


def report(
    results: dict[tuple[str, int], dict[str, float]],
    levels: list[int],
    body_bytes: int,
    service_us: dict[str, float],
    rounds: int,
) -> int:
    load = os.getloadavg()[0]
    names = sorted({name for name, _ in results}, key=["bare", "webhook", "before"].index)
    print(
        f"POST /mutate, {body_bytes}-byte AdmissionReview, TLS keep-alive; servers on core 0, wrk on core 1"
    )
    print(
        f"{os.cpu_count()} cores, load average {load:.2f} at the end (other processes share these cores);"
        f" medians of {rounds} interleaved run(s)"
    )
    print(
        f"{'clients':>7} {'server':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11}"
    )
    for clients in levels:
        bare = results["bare", clients]
        for name in names:
            r = results[name, clients]
            print(
                f"{clients:>7} {name:>8} {r['rps']:>9.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} {r['cpu_us']:>11.0f}"
            )
        for name in names[1:]:
            hook = results[name, clients]
            print(
                f"{'':>7} {name[:3] + '/bare':>8} {hook['rps'] / bare['rps']:>9.2f}"
                f" {hook['p50'] / bare['p50']:>8.2f} {hook['p99'] / bare['p99']:>8.2f}"
                f" {hook['cpu_us'] / bare['cpu_us']:>11.2f}"
            )
    for name, cost in service_us.items():
        print(
            f"{name}: admission service alone (in-process, no HTTP/TLS) {cost:.0f} µs CPU per review"
        )
    verdicts = []
    if 1 in levels:
        p99 = results["webhook", 1]["p99"]
        verdicts.append(
            (f"p99 at 1 client {p99:.3f} ms <= {P99_ONE_CLIENT_MS} ms", p99 <= P99_ONE_CLIENT_MS)
        )
    if 16 in levels:
        bare, hook = results["bare", 16], results["webhook", 16]
        throughput, p99 = hook["rps"] / bare["rps"], hook["p99"] / bare["p99"]
        verdicts.append(
            (
                f"throughput at 16 clients {throughput:.2f}x bare >= {THROUGHPUT_RATIO_16}x",
                throughput >= THROUGHPUT_RATIO_16,
            )
        )
        verdicts.append(
            (f"p99 at 16 clients {p99:.2f}x bare <= {P99_RATIO_16}x", p99 <= P99_RATIO_16)
        )
        # On a shared machine wrk's figures also measure the neighbours; CPU per request does not.
        capacity = bare["cpu_us"] / hook["cpu_us"]
        print(
            f"CPU-bound throughput at 16 clients (bare CPU µs/req ÷ webhook's): {capacity:.2f}x bare"
        )
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
