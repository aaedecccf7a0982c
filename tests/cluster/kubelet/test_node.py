"""The process-kubelet as a node: registration, lease, the kubelet API's client authentication and
the device-plugin registration socket."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cluster.kubelet.pod_specs import NODE, pod, python
from tests.support.fake_bitfusion import FakeBitfusionClient

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane
    from tests.cluster.kubelet import ProcessKubelet
    from tests.support.cluster_handle import ClusterHandle

RESOURCE = "bitfusion.io/gpu"


def test_node_is_registered_ready_with_its_address_port_and_lease(
    cluster: ClusterHandle, kubelet: ProcessKubelet
) -> None:
    node = cluster.api.get("Node", NODE)
    status = node["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.port
    assert status["allocatable"]["pods"] == "110"
    lease = cluster.api.get("Lease", NODE, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]


@pytest.mark.parametrize("client_cert", [False, True], ids=["no-certificate", "foreign-ca"])
def test_kubelet_api_serves_only_the_apiservers_client_certificate(
    kubelet: ProcessKubelet, tmp_path: Path, client_cert: bool
) -> None:
    from bf_jupyter.cluster import certs

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if client_cert:  # a certificate from a CA the kubelet does not trust
        foreign = certs.issue(service="intruder", namespace="default")
        (tmp_path / "tls.crt").write_bytes(foreign.server_cert)
        (tmp_path / "tls.key").write_bytes(foreign.server_key)
        context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    connection = http.client.HTTPSConnection("127.0.0.1", kubelet.port, context=context, timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connection.request("GET", "/healthz")
        connection.getresponse().read()
    connection.close()


def test_device_plugin_capacity_reaches_the_node_and_allocate_runs_at_container_start(
    cluster: ClusterHandle, kubelet: ProcessKubelet, namespace: str, tmp_path: Path
) -> None:
    # given bf-jupyter device-plugin registered with the kubelet, over a pool of two GPUs
    assert kubelet.plugin_dir is not None
    pool = FakeBitfusionClient(tmp_path / "client", servers=[2])
    argv = [
        sys.executable,
        "-m",
        "bf_jupyter",
        "device-plugin",
        "--plugin-dir",
        str(kubelet.plugin_dir),
    ]
    with (tmp_path / "plugin.log").open("w") as log:
        plugin = subprocess.Popen(
            argv, env=pool.env(), stdout=log, stderr=log, start_new_session=True
        )
    try:
        # then the Node shows its capacity and allocatable
        cluster.wait_for(
            "Node",
            None,
            lambda _e, n: (n.get("status") or {}).get("allocatable", {}).get(RESOURCE) == "200",
            field_selector=f"metadata.name={NODE}",
            describe=f"{RESOURCE} allocatable on {NODE}",
        )
        assert cluster.api.get("Node", NODE)["status"]["capacity"][RESOURCE] == "200"
        # and a container that asks for units gets the plugin's Allocate env
        code = "import os; print(os.environ.get('BF_JUPYTER_GPU_UNITS'))"
        limits = {"limits": {RESOURCE: "50"}}
        cluster.api.create(
            "Pod", pod("gpu", python(code), container={"resources": limits}), namespace
        )
        cluster.wait_for_pod_phase(namespace, "gpu", "Succeeded")
        assert cluster.pod_log(namespace, "gpu") == "50"
        # when the kubelet restarts its registration server, the plugin registers again
        kubelet.restart_device_manager()
        cluster.wait_for(
            "Node",
            None,
            lambda _e, n: (n.get("status") or {}).get("allocatable", {}).get(RESOURCE) == "200",
            field_selector=f"metadata.name={NODE}",
            describe=f"{RESOURCE} allocatable again on {NODE}",
        )
    finally:
        os.killpg(plugin.pid, 15)
        plugin.wait(30)


def test_stopping_the_kubelet_stops_its_pods_processes(
    control_plane: ControlPlane, cluster: ClusterHandle, namespace: str, tmp_path: Path
) -> None:
    from tests.cluster.kubelet import ProcessKubelet

    # given a second node running a pod that sleeps
    other = ProcessKubelet(control_plane, "kubelet-stop-test", tmp_path / "node").start()
    try:
        spec = pod("sleeper", ["sleep", "600"])
        spec["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "kubelet-stop-test"}
        cluster.api.create("Pod", spec, namespace)
        cluster.wait_for_pod_phase(namespace, "sleeper", "Running")
        worker = next(iter(other.workers.values()))
        pid = worker.processes["main"].pid
    finally:
        other.stop()
    # then its process group is gone
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    cluster.api.delete("Pod", "sleeper", namespace, grace_period_seconds=0)
    cluster.api.delete("Node", "kubelet-stop-test")
