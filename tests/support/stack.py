"""The project's cluster side on the test cluster, deployed as the README's "Deploy" section says.

On the real control plane (``tests.cluster.control_plane``) and one process-kubelet node
(``tests.cluster.kubelet``), this runs the README's commands with the pinned ``kubectl`` against a
copy of ``cluster/``:

    bf-jupyter certs --namespace bf-system --out cluster/certs
    kubectl create namespace bf-system
    kubectl -n bf-system create secret tls bf-webhook-tls ...
    kubectl -n bf-system create secret generic bf-token-service-tls ...
    kubectl -n bf-system create secret generic bitfusion-secret ...
    kubectl apply -k cluster/

and waits until the webhook and token-service Deployments are available and the device plugin's
DaemonSet pod has advertised ``bitfusion.io/gpu`` on the node. Nothing in ``cluster/`` is changed: the
process-kubelet runs the images as this machine (``bf-jupyter``: this environment's scripts;
``bitfusion-client``: a client folder whose ``bin/bitfusion`` is ``bitfusion-sim``), and maps the
device plugin's hostPath to its registration folder.

``bitfusion-sim`` state (``BF_SIM_HOME``) is per stack for the device plugin, and per test namespace
for its pods (the kubelet gives it to them), so one test's leases never meet another's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bf_jupyter.contract import ANNOTATION_MANAGEMENT, RESOURCE_AMOUNT, STATUS_INJECTED
from bf_jupyter.kubeapi import KubeApi
from tests.support.cluster_handle import ClusterHandle

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane
    from tests.cluster.kubelet.kubelet import ProcessKubelet
    from tests.cluster.service_proxy import ServiceProxy

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
SYSTEM_NAMESPACE = "bf-system"
NODE_NAME = "node-1"
TOKEN_SECRET = "bitfusion-secret"
TOKEN_FILES = {
    "ca.crt": "simulated CA\n",
    "client.yaml": "id: e2e\n",
    "servers.conf": "servers: []\n",
}
CLIENT_IMAGE = "bitfusion-client"
CLIENT_PATH = "/opt/bitfusion"  # where the client image holds the client (webhook/config.yaml)
DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
SIM_SCRIPT = "bitfusion-sim"
READY_TIMEOUT = 120.0


class StackError(RuntimeError):
    """The cluster side did not come up; the message says which step and shows its output."""


def script(name: str) -> str:
    """A console script of this environment (beside the running interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed in this environment: run `make install`")
    return found


class BitfusionStack:
    """Start with ``start()`` (returns the ``ClusterHandle``), end with ``stop()``."""

    def __init__(self, control_plane: ControlPlane, root: Path | None = None) -> None:
        self.control_plane = control_plane
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="bf-e2e-"))
        self.sim_home = self.root / "sim"
        self.client_dir = self.root / "images" / "bitfusion-client" / "opt" / "bitfusion"
        self.kubelet: ProcessKubelet | None = None
        self.proxy: ServiceProxy | None = None
        self.handle: ClusterHandle | None = None

    # ----- start ----------------------------------------------------------------------------------

    def start(self) -> ClusterHandle:
        try:
            self.sim_home.mkdir(parents=True)
            self._make_client_image()
            self._start_node()
            self._deploy()
            api = KubeApi.connect(kubeconfig=str(self.control_plane.kubeconfig))
            self.handle = ClusterHandle(self.control_plane.kubeconfig, api, self.control_plane)
            self.handle.namespace_setup.append(self._prepare_namespace)
            self._wait_until_ready()
            return self.handle
        except BaseException:
            self.stop()
            raise

    def _make_client_image(self) -> None:
        """The ``bitfusion-client`` image's files: ``bin/bitfusion`` is ``bitfusion-sim``."""
        (self.client_dir / "bin").mkdir(parents=True)
        (self.client_dir / "lib" / "x86_64-linux-gnu" / "lib").mkdir(parents=True)
        (self.client_dir / "bin" / "bitfusion").symlink_to(script(SIM_SCRIPT))

    def _start_node(self) -> None:
        from tests.cluster.kubelet.kubelet import ProcessKubelet
        from tests.cluster.service_proxy import ServiceProxy

        self.proxy = ServiceProxy(
            self.control_plane.kubeconfig,
            apiserver=self.control_plane.apiserver_address,
            dns_file=self.root / "cluster-dns.json",
        ).start()
        self.kubelet = ProcessKubelet(
            self.control_plane,
            NODE_NAME,
            self.root / NODE_NAME,
            env={"BF_SIM_HOME": str(self.sim_home)},
            device_plugins=True,
            image_files={CLIENT_IMAGE: {CLIENT_PATH: self.client_dir}},
            cluster_dns=self.proxy.dns_file,
        )
        assert self.kubelet.plugin_dir is not None
        self.kubelet.host_paths[DEVICE_PLUGIN_DIR] = self.kubelet.plugin_dir
        self.kubelet.start()

    def _kubectl(self, *args: str, input: str | None = None) -> str:
        result = self.control_plane.kubectl(*args, input=input)
        if result.returncode != 0:
            raise StackError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _deploy(self) -> None:
        """The README's Deploy commands, on a copy of ``cluster/``."""
        cluster = self.root / "cluster"
        shutil.copytree(REPO / "cluster", cluster)
        certs = cluster / "certs"
        subprocess.run(
            [script("bf-jupyter"), "certs", "--namespace", SYSTEM_NAMESPACE, "--out", str(certs)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._kubectl("create", "namespace", SYSTEM_NAMESPACE)
        system = ("-n", SYSTEM_NAMESPACE)
        self._kubectl(
            *system, "create", "secret", "tls", "bf-webhook-tls",
            f"--cert={certs / 'tls.crt'}", f"--key={certs / 'tls.key'}",
        )  # fmt: skip
        self._kubectl(
            *system, "create", "secret", "generic", "bf-token-service-tls",
            "--type=kubernetes.io/tls",
            f"--from-file=tls.crt={certs / 'token-service.crt'}",
            f"--from-file=tls.key={certs / 'token-service.key'}",
            f"--from-file=ca.crt={certs / 'ca.crt'}",
        )  # fmt: skip
        self._create_token_secret()
        self._kubectl("apply", "-k", str(cluster))

    def _create_token_secret(self) -> None:
        """The Bitfusion token files (simulated) as the Secret in bf-system, as the README says."""
        tokens = self.root / "tokens"
        tokens.mkdir()
        for name, text in TOKEN_FILES.items():
            (tokens / name).write_text(text)
        self._kubectl(
            "-n", SYSTEM_NAMESPACE, "create", "secret", "generic", TOKEN_SECRET,
            *(f"--from-file={tokens / name}" for name in TOKEN_FILES),
        )  # fmt: skip

    def _wait_until_ready(self) -> None:
        for deployment in ("bf-webhook", "bf-token-service"):
            self._kubectl(
                "-n", SYSTEM_NAMESPACE, "rollout", "status", f"deployment/{deployment}",
                f"--timeout={int(READY_TIMEOUT)}s",
            )  # fmt: skip
        self.wait_for_webhook()
        assert self.handle is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            node = self.handle.api.get("Node", NODE_NAME)
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            if int(allocatable.get("bitfusion.io/gpu", "0")) > 0:
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"the device plugin did not advertise bitfusion.io/gpu on {NODE_NAME} in "
                    f"{READY_TIMEOUT:.0f}s; allocatable: {allocatable}"
                )
            time.sleep(0.2)

    def wait_for_webhook(self, timeout: float = READY_TIMEOUT) -> None:
        """Until the webhooks answer: a server-side dry run of a Bitfusion pod comes back mutated
        (a Deployment is Available once its pods are Ready, a moment before the apiserver's first
        call through the Service gets an answer in time)."""
        probe = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "webhook-probe", "annotations": {ANNOTATION_MANAGEMENT: "all"}},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["true"],
                        "resources": {"limits": {RESOURCE_AMOUNT: "1"}},
                    }
                ]
            },
        }
        deadline = time.monotonic() + timeout
        while True:
            result = self.control_plane.kubectl(
                "-n", "default", "create", "--dry-run=server", "-o", "json", "-f", "-",
                input=json.dumps(probe),
            )  # fmt: skip
            if result.returncode == 0 and STATUS_INJECTED in result.stdout:
                return
            if time.monotonic() > deadline:
                raise StackError(f"the webhooks did not answer in {timeout:.0f}s: {result.stderr}")
            time.sleep(0.2)

    def _prepare_namespace(self, namespace: str) -> None:
        """The namespace's own bitfusion-sim state, given to its pods by the kubelet."""
        assert self.kubelet is not None
        home = self.sim_home_of(namespace)
        home.mkdir(parents=True, exist_ok=True)
        self.kubelet.set_namespace_env(namespace, {"BF_SIM_HOME": str(home)})

    def sim_home_of(self, namespace: str | None) -> Path:
        return self.sim_home / "namespaces" / namespace if namespace else self.sim_home

    # ----- checks ---------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BF_", "KUBECONFIG"))}
        env["BF_SIM_HOME"] = str(self.sim_home)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def leases(self, namespace: str | None = None) -> list[Any]:
        """The leases held now in ``namespace``'s bitfusion-sim pool (the stack's without one)."""
        from bf_jupyter.bitfusion.records import parse_list_gpus

        env = {**self.environment(), "BF_SIM_HOME": str(self.sim_home_of(namespace))}
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
        """Remove what was deployed, stop the node (every pod process group) and the proxy; remove
        every file unless ``keep_files`` (then ``remove_files()`` does, after a test looked at the
        pool). The control plane is the caller's."""
        if self.handle is not None:
            self._undeploy()
            self.handle.api.close()
            self.handle = None
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet = None
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if not keep_files:
            self.remove_files()

    def _undeploy(self) -> None:
        """The webhook configurations (a failing-closed one would block the cluster's next
        Bitfusion pods) and bf-system; the node's stop then ends every pod process at once."""
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            self.control_plane.kubectl(
                "delete", kind, "-l", "app.kubernetes.io/part-of=bf-jupyter", "--wait=false"
            )
        self.control_plane.kubectl("delete", "namespace", SYSTEM_NAMESPACE, "--wait=false")

    def remove_files(self) -> None:
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
