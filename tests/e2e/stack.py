"""The project's cluster side on the emulated cluster, wired as a real deployment would be:

- ``bf-jupyter certs`` material (``bf_jupyter.cluster.certs``) for the Service ``bf-system/bf-webhook``;
- the webhook configurations rendered with ``kubectl kustomize`` from ``cluster/base`` plus the
  caBundle patch that ``certs`` writes (the same layering as ``cluster/kustomization.yaml``);
- ``bf-jupyter webhook`` as a process over HTTPS, with a config whose client table points the
  client binary at ``bitfusion-sim`` (a client "image" directory holding ``bin/bitfusion-sim``);
- ``bf-jupyter device-plugin`` as a process registered with node-1's kubelet (the device manager
  in ``tests.emulator.device_plugins``), advertising the ``bitfusion-sim`` pool;
- ``bitfusion-sim`` state (``BF_SIM_HOME``) per stack for the device plugin, and per test
  namespace for its pods (given to them by the kubelet), so one test's leases never meet another's
  and each test can check its own.

Every test namespace gets the token Secret ``bitfusion-secret`` the webhook requires.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bf_jupyter.kubeapi import KubeApi
from tests.e2e.cluster_handle import ClusterHandle
from tests.e2e.managed_process import ManagedProcess
from tests.emulator.webhook_config import kubectl_path

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
WEBHOOK_NAMESPACE = "bf-system"
WEBHOOK_SERVICE = "bf-webhook"
TOKEN_SECRET = "bitfusion-secret"
TOKEN_FILES = {
    "ca.crt": "simulated CA\n",
    "client.yaml": "id: e2e\n",
    "servers.conf": "servers: []\n",
}
CLIENT_IMAGE = "bitfusion-client:sim"
SIM_SCRIPT = "bitfusion-sim"


def script(name: str) -> str:
    """A console script of this environment (beside the running interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed in this environment: run `make install`")
    return found


class BitfusionStack:
    """Start with ``start()`` (returns the ``ClusterHandle``), end with ``stop()``."""

    def __init__(self, root: Path | None = None) -> None:
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="bf-e2e-"))
        self.sim_home = self.root / "sim"
        self.client_dir = self.root / "client-image" / "opt" / "bitfusion"
        self.processes: list[ManagedProcess] = []
        self.cluster: Any = None
        self.handle: ClusterHandle | None = None

    # ----- start ----------------------------------------------------------------------------------

    def start(self) -> ClusterHandle:
        from tests.emulator.cluster import EmulatedCluster, NodeSpec

        try:
            self.sim_home.mkdir(parents=True)
            self.cluster = EmulatedCluster(
                nodes=[NodeSpec()],
                workdir=self.root / "cluster",
                device_plugins=True,
                node_env={"BF_SIM_HOME": str(self.sim_home)},
            ).start()
            self._start_device_plugin()
            certs = self._write_certs()
            webhook = self._start_webhook(certs)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                rendered = pool.submit(self._render, certs)
                port = int(
                    webhook.wait_for_line(r"serving admission webhooks on https://:(\d+)").group(1)
                )
                manifests = rendered.result()
            self.cluster.use_webhooks(manifests)
            self.cluster.expose_service(WEBHOOK_NAMESPACE, WEBHOOK_SERVICE, ("127.0.0.1", port))
            self.cluster.call(
                self.cluster.device_managers["node-1"].wait_for("bitfusion.io/gpu", 1)
            )
            api = KubeApi.connect(kubeconfig=str(self.cluster.kubeconfig))
            self.handle = ClusterHandle(self.cluster.kubeconfig, api, self.cluster)
            self.handle.namespace_setup.append(self._prepare_namespace)
            return self.handle
        except BaseException:
            self.stop()
            raise

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BF_", "KUBECONFIG"))}
        env["BF_SIM_HOME"] = str(self.sim_home)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def _start_device_plugin(self) -> ManagedProcess:
        plugin_dir = self.cluster.device_managers["node-1"].plugin_dir
        argv = [
            script("bf-jupyter"), "device-plugin", "--plugin-dir", str(plugin_dir),
            "--health-interval", "1", "--kubelet-check-interval", "0.1", "--log-level", "info",
        ]  # fmt: skip
        process = ManagedProcess(
            "device-plugin", argv, env=self._environment(), log_path=self.root / "device-plugin.log"
        )
        self.processes.append(process)
        return process

    def _write_certs(self) -> Path:
        from bf_jupyter.cluster import certs

        out = self.root / "certs"
        certs.write_files(out, certs.issue(service=WEBHOOK_SERVICE, namespace=WEBHOOK_NAMESPACE))
        return out

    def _webhook_config(self) -> Path:
        (self.client_dir / "bin").mkdir(parents=True)
        (self.client_dir / "lib").mkdir()
        (self.client_dir / "bin" / SIM_SCRIPT).symlink_to(script(SIM_SCRIPT))
        config = {
            "defaultClient": {"os": "ubuntu20", "version": "450"},
            "clients": [
                {
                    "os": "ubuntu20",
                    "version": "450",
                    "image": CLIENT_IMAGE,
                    "clientDir": str(self.client_dir),
                    "binary": str(self.client_dir / "bin" / SIM_SCRIPT),
                    "libraryPath": str(self.client_dir / "lib"),
                }
            ],
            "perGpuMemory": "16Gi",
            "tokenSecret": TOKEN_SECRET,
        }
        path = self.root / "webhook-config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def _start_webhook(self, certs: Path) -> ManagedProcess:
        argv = [
            script("bf-jupyter"), "webhook", "--port", "0", "--address", "127.0.0.1",
            "--tls-cert", str(certs / "tls.crt"), "--tls-key", str(certs / "tls.key"),
            "--config", str(self._webhook_config()), "--kubeconfig", str(self.cluster.kubeconfig),
            "--drain-seconds", "0",
        ]  # fmt: skip
        process = ManagedProcess(
            "webhook", argv, env=self._environment(), log_path=self.root / "webhook.log"
        )
        self.processes.append(process)
        return process

    def _render(self, certs: Path) -> list[Obj]:
        """``cluster/base`` + this stack's caBundle patch, rendered by kubectl kustomize."""
        from tests.emulator.webhook_config import render_kustomization

        overlay = self.root / "manifests"
        overlay.mkdir()
        shutil.copy(certs / "ca-bundle-patch.yaml", overlay / "ca-bundle-patch.yaml")
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(REPO / "cluster" / "base", overlay)],
            "patches": [{"path": "ca-bundle-patch.yaml"}],
        }
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return render_kustomization(overlay)

    def _prepare_namespace(self, namespace: str) -> None:
        """The token Secret the webhook requires, and the namespace's own bitfusion-sim state."""
        assert self.handle is not None
        secret = {"metadata": {"name": TOKEN_SECRET}, "stringData": TOKEN_FILES}
        self.handle.api.create("Secret", secret, namespace)
        home = self.sim_home_of(namespace)
        home.mkdir(parents=True, exist_ok=True)
        self.cluster.set_namespace_env(namespace, {"BF_SIM_HOME": str(home)})

    def sim_home_of(self, namespace: str | None) -> Path:
        return self.sim_home / "namespaces" / namespace if namespace else self.sim_home

    # ----- checks ---------------------------------------------------------------------------------

    def leases(self, namespace: str | None = None) -> list[Any]:
        """The leases held now in ``namespace``'s bitfusion-sim pool (the stack's without one)."""
        from bf_jupyter.bitfusion.records import parse_list_gpus

        env = {**self._environment(), "BF_SIM_HOME": str(self.sim_home_of(namespace))}
        result = subprocess.run(
            [script(SIM_SCRIPT), "list_gpus"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return [
            lease for server in parse_list_gpus(result.stdout).servers for lease in server.leases
        ]

    # ----- stop -----------------------------------------------------------------------------------

    def stop(self, *, keep_files: bool = False) -> None:
        """Stop the daemons (their process groups) and the cluster; remove every file unless
        ``keep_files`` (then ``remove_files()`` does, after a test looked at the pool)."""
        if self.handle is not None:
            self.handle.api.close()
        for process in reversed(self.processes):
            process.stop(grace=5)
        self.processes.clear()
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
        if not keep_files:
            self.remove_files()

    def remove_files(self) -> None:
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def missing_parts() -> list[str]:
    """What the stack needs that this checkout lacks (each lands with its own branch)."""
    import importlib.util

    wanted = {
        "bf_jupyter.cluster.webhook.command": "the webhook (`bf-jupyter webhook`)",
        "bf_jupyter.cluster.certs": "`bf-jupyter certs`",
        "bf_jupyter.cluster.deviceplugin.command": "the device plugin (`bf-jupyter device-plugin`)",
        "bf_jupyter.bitfusion.sim.cli": "`bitfusion-sim`",
        "tests.support.fake_kubelet": "the fake kubelet (tests/support/fake_kubelet.py)",
    }
    missing = [what for module, what in wanted.items() if importlib.util.find_spec(module) is None]
    if not (REPO / "cluster" / "base" / "kustomization.yaml").exists():
        missing.append("the cluster/ manifests")
    if kubectl_path() is None:
        missing.append("kubectl (for kubectl kustomize)")
    return missing
