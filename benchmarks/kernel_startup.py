"""How long a notebook waits for a GPU kernel: start_kernel → first kernel_info_reply.

In one run, interleaved, on this machine: a plain local ipykernel (the default provisioner, no
slice), the ``bitfusion-local`` provisioner (the kernel wrapped in ``bitfusion-sim run``), and the
``bitfusion-kubernetes`` provisioner on the e2e test cluster: the real control plane of the pinned
release (``tests/cluster``, from the binaries ``make cluster-binaries`` caches) with our cluster side
applied by ``kubectl apply -k`` (``tests/support/stack.py``) — Secret + pod through kube-apiserver, our
webhook's pod, kube-scheduler, the process-kubelet, ``bitfusion-sim run`` in the pod, watches,
kernel_info over TCP.
Prints median / p90 / min per kind and the Kubernetes overhead over the plain kernel (target
≤ +0.5 s). Then, for a pod whose image cannot be pulled, the time from the pod status showing
ErrImagePull (seen by an independent watch) to the provisioner's ``failed`` event and to
``start_kernel`` raising (after the pod and Secret are deleted).

    .venv/bin/python benchmarks/kernel_startup.py [--runs 10] [--pull-failures 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.e2e

from jupyter_client.manager import AsyncKernelManager

from bf_jupyter.kernels.kernelspecs import KernelspecRequest, install_kernelspec, render_kernel_json
from bf_jupyter.kernels.progress import PROGRESS
from bf_jupyter.kernels.sliced_kernel import KernelLaunchError
from tests.cluster.control_plane import ControlPlane
from tests.support.stack import BitfusionStack

PULL_FAILURE_REASONS = {"ErrImagePull", "ImagePullBackOff"}


def write_kubernetes_spec(
    root: Path, name: str, kubeconfig: Path, namespace: str, image: str
) -> None:
    spec = render_kernel_json(KernelspecRequest(backend="kubernetes", namespace=namespace))
    spec["metadata"]["kernel_provisioner"]["config"].update(
        kubeconfig=str(kubeconfig), image=image, cpu_request="", memory_request="",
        server_id="benchmark", launch_timeout=3600,
    )  # fmt: skip
    directory = root / "share" / "jupyter" / "kernels" / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kernel.json").write_text(json.dumps(spec))


async def time_to_kernel_info(
    kernel_name: str, env: dict[str, str], stages: dict[str, list[float]] | None = None
) -> float:
    """Seconds from start_kernel to the first kernel_info_reply; the kernel is shut down after.
    With ``stages``, the seconds from start_kernel to the first progress event of each stage the
    provisioner published (created, scheduled, started, locked, …) are appended there."""
    manager = AsyncKernelManager(kernel_name=kernel_name)
    wall_started = time.time()
    started = time.perf_counter()
    await manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        msg_id = client.kernel_info()
        while True:
            reply = await client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                elapsed = time.perf_counter() - started
                break
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
    if stages is not None:
        seen: set[str] = set()
        for event in PROGRESS.history(str(manager.kernel_id)):
            if event.stage not in seen:
                seen.add(event.stage)
                stages.setdefault(event.stage, []).append(event.time - wall_started)
    return elapsed


def watch_pull_failure(
    stack: BitfusionStack, namespace: str, seen: dict[str, float]
) -> Callable[[], None]:
    """Record (monotonic) when any pod in the namespace first shows a pull failure; returns stop()."""
    assert stack.handle is not None
    api = stack.handle.api
    stream = api.open_watch("Pod", namespace, timeout_seconds=600)

    def read() -> None:
        from bf_jupyter.kubeapi import watch_event_from_line

        for line in stream:
            event = watch_event_from_line(line)
            if event is None:
                continue
            for status in (event.object.get("status") or {}).get("containerStatuses") or []:
                reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
                name = event.object["metadata"]["name"]
                if reason in PULL_FAILURE_REASONS and name not in seen:
                    seen[name] = time.monotonic()

    threading.Thread(target=read, daemon=True).start()
    return stream.close


async def pull_failure_latency(
    kernel_name: str, stack: BitfusionStack, namespace: str
) -> tuple[float, float]:
    """(ms from ErrImagePull to the failed event, ms from ErrImagePull to start_kernel raising)."""
    seen: dict[str, float] = {}
    stop = watch_pull_failure(stack, namespace, seen)
    manager = AsyncKernelManager(kernel_name=kernel_name)
    try:
        await manager.start_kernel(env={"BF_SLICE": "1x50%"})
    except KernelLaunchError:
        raised = time.monotonic()
    else:
        raise AssertionError("a kernel with a missing image started")
    finally:
        stop()
    failed_event = PROGRESS.history(str(manager.kernel_id))[-1]
    # ProgressEvent.time is wall-clock; bring it onto the monotonic clock of the watch.
    failed = failed_event.time - time.time() + time.monotonic()
    (pulled_failure,) = seen.values()
    return (failed - pulled_failure) * 1000, (raised - pulled_failure) * 1000


def summary(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"{label:<44} median {statistics.median(ordered):6.3f} s   p90 {p90:6.3f} s   "
        f"min {ordered[0]:6.3f} s   (n={len(ordered)})"
    )


async def main(runs: int, pull_failures: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bf-kernel-bench-"))
    plane = ControlPlane(workdir / "control-plane").start()
    stack = BitfusionStack(plane, workdir / "stack")
    try:
        handle = stack.start()
    except BaseException:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    os.environ["JUPYTER_PATH"] = str(workdir / "share" / "jupyter")
    os.environ["BF_SIM_HOME"] = str(workdir / "local-sim")  # the local provisioner's own pool
    os.environ.setdefault("BF_BITFUSION_BIN", str(Path(sys.executable).with_name("bitfusion-sim")))
    try:
        namespace = handle.create_namespace("bench")
        write_kubernetes_spec(
            workdir, "bench-k8s", handle.kubeconfig, namespace, "bf-jupyter/kernel:bench"
        )
        write_kubernetes_spec(
            workdir, "bench-k8s-missing", handle.kubeconfig, namespace, "bf-jupyter/kernel:missing"
        )
        install_kernelspec(
            KernelspecRequest(backend="local", name="bench-local"), prefix=str(workdir)
        )
        kinds = {
            "plain local ipykernel (python3)": ("python3", {}),
            "bitfusion-local (bitfusion-sim run)": ("bench-local", {"BF_SLICE": "1x50%"}),
            "bitfusion-kubernetes (test cluster)": ("bench-k8s", {"BF_SLICE": "1x50%"}),
        }
        for name, env in kinds.values():  # warm-up: imports, caches, the first pod's path
            await time_to_kernel_info(name, env)
        samples: dict[str, list[float]] = {label: [] for label in kinds}
        stages: dict[str, list[float]] = {}  # the kubernetes kernels' progress, by stage
        for _ in range(runs):
            for label, (name, env) in kinds.items():
                watched = stages if name == "bench-k8s" else None
                samples[label].append(await time_to_kernel_info(name, env, watched))
        print(f"start_kernel → first kernel_info_reply, {runs} runs each, interleaved:")
        for label, values in samples.items():
            print("  " + summary(label, values))
        plain = statistics.median(samples["plain local ipykernel (python3)"])
        for label in list(kinds)[1:]:
            print(
                f"  overhead of {label}: {statistics.median(samples[label]) - plain:+.3f} s (median)"
            )
        print(
            "  bitfusion-kubernetes progress, seconds after start_kernel (median of first events):"
        )
        for stage, offsets in sorted(stages.items(), key=lambda item: statistics.median(item[1])):
            print(f"    {stage:<10} {statistics.median(offsets):6.3f} s")
        latencies = [
            await pull_failure_latency("bench-k8s-missing", stack, namespace)
            for _ in range(pull_failures)
        ]
        to_event = [event for event, _ in latencies]
        to_raise = [raised for _, raised in latencies]
        print(f"ImagePullBackOff detection, {pull_failures} launches of a missing image:")
        print(
            f"  ErrImagePull in pod status → 'failed' event:        median {statistics.median(to_event):7.1f} ms   max {max(to_event):7.1f} ms"
        )
        print(
            f"  ErrImagePull in pod status → start_kernel raises:   median {statistics.median(to_raise):7.1f} ms   max {max(to_raise):7.1f} ms (pod and Secret deleted)"
        )
    finally:
        stack.stop()
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--pull-failures", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.pull_failures))
