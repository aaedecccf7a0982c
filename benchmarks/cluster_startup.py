"""How long the e2e test cluster takes from the cached binaries to ready, phase by phase.

Each run: the control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager) to
ready, as ``ControlPlane.start()`` waits for it; then the project's cluster side, as
``BitfusionStack.start()`` brings it up — the node (kube-proxy stand-in and process-kubelet, Node
Ready), ``kubectl apply -k`` of ``cluster/``, and ready (webhook and token-service Deployments
available, the device plugin's ``bitfusion.io/gpu`` in the Node's allocatable); then a check that
each part answers: the Node is Ready, a server-side dry-run of a Bitfusion pod comes back mutated by
our webhook (apiserver → Service → webhook pod), and the token service answers ``/readyz`` over TLS
on its cluster IP. Then everything stops. Prints per-phase median and max, and the load average
(the machine is shared); asserts nothing.

    make cluster-binaries && .venv/bin/python benchmarks/cluster_startup.py [--runs 3]

Target (issue 12): ≤ 15 s from the cached binaries to a ready cluster.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:
    from tests.cluster.binaries import ControlPlaneBinaries
    from tests.support.stack import BitfusionStack

PHASES = (
    "control plane",
    "stack: node",
    "stack: kubectl apply -k",
    "stack: ready",
    "ready cluster (sum)",
    "checks: webhook, token svc",
    "stop: stack",
    "stop: control plane",
)


def timed_method(stack: BitfusionStack, name: str, label: str, times: dict[str, float]) -> None:
    """Wrap ``stack.<name>`` so that its duration lands in ``times[label]``."""
    original: Callable[[], None] = getattr(stack, name)

    def wrapper() -> None:
        begin = time.perf_counter()
        try:
            original()
        finally:
            times[label] = time.perf_counter() - begin

    setattr(stack, name, wrapper)


def check_node_ready(stack: BitfusionStack) -> None:
    from tests.support.stack import NODE_NAME

    assert stack.handle is not None
    node = stack.handle.api.get("Node", NODE_NAME)
    conditions = (node.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
        raise RuntimeError(f"node {NODE_NAME} is not Ready: {conditions}")


def check_webhook(stack: BitfusionStack) -> None:
    """A dry-run create of a Bitfusion pod: the apiserver calls our webhook, which mutates it."""
    from bf_jupyter.contract import (
        ANNOTATION_MANAGEMENT,
        ANNOTATION_STATUS,
        RESOURCE_AMOUNT,
        RESOURCE_PERCENT,
        STATUS_INJECTED,
    )

    assert stack.handle is not None
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bench-probe", "annotations": {ANNOTATION_MANAGEMENT: "all"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.12",
                    "command": ["true"],
                    "resources": {"limits": {RESOURCE_AMOUNT: "1", RESOURCE_PERCENT: "50"}},
                }
            ]
        },
    }
    core = stack.handle.core_v1()
    try:
        created = core.create_namespaced_pod("default", pod, dry_run="All")
    finally:
        core.api_client.close()
    status = (created.metadata.annotations or {}).get(ANNOTATION_STATUS)
    if status != STATUS_INJECTED:
        raise RuntimeError(
            f"the webhook did not mutate the dry-run pod: {ANNOTATION_STATUS}={status}"
        )


def check_token_service(stack: BitfusionStack) -> None:
    """GET /readyz on the token service's cluster IP (the kube-proxy stand-in → its pod), TLS
    verified with the CA the stack deployed."""
    from tests.support.stack import SYSTEM_NAMESPACE

    assert stack.handle is not None
    service = stack.handle.api.get("Service", "bf-token-service", SYSTEM_NAMESPACE)
    address = service["spec"]["clusterIP"]
    context = ssl.create_default_context(cafile=str(stack.root / "cluster" / "certs" / "ca.crt"))
    host = f"bf-token-service.{SYSTEM_NAMESPACE}.svc"
    answer = _https_get(address, host, context, "/readyz")
    if answer != 200:
        raise RuntimeError(f"the token service answered /readyz with {answer}")


def _https_get(address: str, host: str, context: ssl.SSLContext, path: str) -> int:
    """The status code of a GET on ``address``:443 that verifies the certificate names ``host``."""
    raw = socket.create_connection((address, 443), timeout=10)
    with context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        status_line = tls.recv(4096).split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1])


def time_once(binaries: ControlPlaneBinaries) -> dict[str, float]:
    from tests.cluster.control_plane import ControlPlane
    from tests.support.stack import BitfusionStack

    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bf-cluster-bench-") as folder:
        plane = ControlPlane(Path(folder) / "plane", binaries)
        begin = time.perf_counter()
        plane.start()
        times["control plane"] = time.perf_counter() - begin
        stack = BitfusionStack(plane, Path(folder) / "stack")
        try:
            timed_method(stack, "_start_node", "stack: node", times)
            timed_method(stack, "_deploy", "stack: kubectl apply -k", times)
            timed_method(stack, "_wait_until_ready", "stack: ready", times)
            begin = time.perf_counter()
            stack.start()
            stack_time = time.perf_counter() - begin
            times["ready cluster (sum)"] = times["control plane"] + stack_time
            begin = time.perf_counter()
            check_node_ready(stack)
            check_webhook(stack)
            check_token_service(stack)
            times["checks: webhook, token svc"] = time.perf_counter() - begin
        finally:
            begin = time.perf_counter()
            stack.stop()
            times["stop: stack"] = time.perf_counter() - begin
            begin = time.perf_counter()
            plane.stop()
            times["stop: control plane"] = time.perf_counter() - begin
    return times


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from tests.cluster.binaries import find_binaries

    binaries = find_binaries()
    print(f"binaries: {binaries.kube_apiserver.parent}")
    print(f"cpus: {os.cpu_count()}, load average before: {load()}")
    runs = []
    for index in range(args.runs):
        runs.append(time_once(binaries))
        print(
            f"run {index + 1}: ready cluster in {runs[-1]['ready cluster (sum)']:.2f}s, load {load()}"
        )
    print(f"{'phase':28} {'median':>8} {'max':>8}  ({args.runs} runs)")
    for phase in PHASES:
        values = [run[phase] for run in runs]
        print(f"{phase:28} {statistics.median(values):7.2f}s {max(values):7.2f}s")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
