"""JupyterHub with GPU slices: how long the spawn form takes to render for a user, and how much a
slice adds to a spawn.

- ``form``: ``fitting_profile_list``'s marking (quota and 50 nodes, from memory: what the hub does
  after its two list calls) plus KubeSpawner's rendering of the form template, median and max over
  ``--form-runs``. Target (issue 16): ≤ 100 ms with 50 nodes and a quota.
- ``spawn`` (with ``--spawn-runs`` > 0): on the e2e test cluster (control plane, our cluster side,
  the hub of ``examples/hub`` as in ``tests/e2e/hub``), from posting the spawn form to the progress
  stream's "ready", for the CPU profile and for half a GPU, alternated. Target: slice ≤ +1 s.

Prints figures and the load average (the machine is shared); asserts nothing.

    .venv/bin/python benchmarks/hub_spawn.py [--form-runs 50] [--spawn-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NODES = 50
# The process-kubelet knows no image entrypoint: give every pod (the CPU profile's too) its argv as
# command, as the GPU profile's hook does, so both spawns run the same server.
ENTRYPOINT_HOOK = """
from bf_jupyter.hub import move_args_to_command


def _entrypoint(spawner, pod):
    move_args_to_command(pod)
    return pod


c.KubeSpawner.modify_pod_hook = _entrypoint
"""
UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: hub}}]
current-context: none
"""


def form_context() -> Any:
    from bf_jupyter.hub_form import FitContext

    quota = {
        "metadata": {"name": "gpu-quota"},
        "status": {
            "hard": {"requests.bitfusion.io/gpu": "150"},
            "used": {"requests.bitfusion.io/gpu": "100"},
        },
    }
    nodes = [
        {"metadata": {"name": f"node-{i}"}, "status": {"allocatable": {"bitfusion.io/gpu": "400"}}}
        for i in range(NODES)
    ]
    return FitContext("team-a", [quota], nodes)


def time_form(runs: int) -> list[float]:
    """Seconds per form: marking plus KubeSpawner's template rendering."""
    with tempfile.TemporaryDirectory() as folder:
        # KubeSpawner loads a kubeconfig when built (none is called); kubernetes_asyncio reads
        # $KUBECONFIG at import
        kubeconfig = Path(folder) / "kubeconfig"
        kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
        os.environ["KUBECONFIG"] = str(kubeconfig)
        from kubespawner import KubeSpawner

        async def build() -> Any:  # KubeSpawner shares an API client per running loop
            return KubeSpawner(_mock=True)

        spawner = asyncio.run(build())

    from bf_jupyter.hub import gpu_slice_profile
    from bf_jupyter.hub_form import FORM_TEMPLATES, mark_fit

    spawner.additional_profile_form_template_paths = [FORM_TEMPLATES]
    profiles = [
        {"display_name": "CPU only", "slug": "cpu", "default": True},
        gpu_slice_profile(slices=["1x25%", "1x50%", "1", "2", "4x8Gi"]),
    ]
    context = form_context()
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        html = spawner._render_options_form(mark_fit(profiles, context))
        times.append(time.perf_counter() - begin)
    assert "disabled" in html  # the quota leaves 0.5 GPU: some choices are marked
    return times


def time_spawns(runs: int) -> dict[str, list[float]]:
    """Seconds from posting the form to ready, per profile, on the test cluster."""
    from tests.cluster.control_plane import ControlPlane
    from tests.support import hub_rbac
    from tests.support.hub_process import RunningHub
    from tests.support.stack import BitfusionStack

    choices = {
        "no slice (CPU profile)": {"profile": "cpu"},
        "half a GPU": {"profile": "bitfusion-gpu", "profile-option-bitfusion-gpu--gpu": "1x50"},
    }
    times: dict[str, list[float]] = {name: [] for name in choices}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        plane = ControlPlane(root / "plane").start()
        stack = BitfusionStack(plane)
        try:
            handle = stack.start()
            namespace = handle.create_namespace("bench")
            identity = hub_rbac.deploy(plane, namespace, root)
            hub = RunningHub.start(
                root / "hub",
                namespace=namespace,
                kubeconfig=identity.kubeconfig,
                extra_config=ENTRYPOINT_HOOK,
            )
            try:
                browser = hub.browser("bench").login()
                for _ in range(runs):
                    for name, form in choices.items():
                        begin = time.perf_counter()
                        outcome = browser.spawn(form)
                        elapsed = time.perf_counter() - begin
                        if not outcome.ready:
                            raise RuntimeError(f"{name}: {outcome.message}")
                        times[name].append(elapsed)
                        hub.stop_server("bench")
                        handle.wait_for_pod_gone(namespace, "jupyter-bench", timeout=120)
            finally:
                hub.stop()
                hub_rbac.undeploy(plane, namespace)
        finally:
            stack.stop()
            plane.stop()
    return times


def report(label: str, values: list[float]) -> None:
    print(
        f"  {label:<28} median {statistics.median(values) * 1000:8.1f} ms   "
        f"max {max(values) * 1000:8.1f} ms   (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--form-runs", type=int, default=50)
    parser.add_argument("--spawn-runs", type=int, default=0, help="0: skip the cluster part")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"spawn form, {NODES} nodes and a quota (target ≤ 100 ms):")
    report("mark + render", time_form(args.form_runs))
    if args.spawn_runs > 0:
        print("spawn, form posted → server ready (target: slice ≤ +1 s):")
        spawns = time_spawns(args.spawn_runs)
        for name, values in spawns.items():
            report(name, values)
        extra = statistics.median(spawns["half a GPU"]) - statistics.median(
            spawns["no slice (CPU profile)"]
        )
        print(f"  slice adds (median)          {extra * 1000:8.1f} ms")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
