"""The kube-proxy stand-in: a Service's cluster IP forwards to a Ready pod its selector picks."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.cluster.kubelet.pod_specs import pod, python
from tests.cluster.service_proxy import ServiceProxy

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane
    from tests.support.cluster_handle import ClusterHandle

ECHO = (
    "import os,socket\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((os.environ['POD_IP'], 8080)); s.listen()\n"
    "print('listening', flush=True)\n"
    "while True:\n"
    "    c,_=s.accept(); c.sendall(b'hello from '+os.environ['POD_NAME'].encode()+b' got '+c.recv(100)); c.close()\n"
)


@pytest.fixture
def proxy(control_plane: ControlPlane) -> Iterator[ServiceProxy]:
    service_proxy = ServiceProxy(control_plane.kubeconfig).start()
    try:
        yield service_proxy
    finally:
        service_proxy.stop()


def ask(address: tuple[str, int], text: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(text)
        return connection.recv(100)


def test_cluster_ip_forwards_to_the_ready_pod_by_named_port(
    cluster: ClusterHandle, namespace: str, proxy: ServiceProxy, control_plane: ControlPlane
) -> None:
    # given a pod serving on its own address, port named "http"
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    spec = pod(
        "echo",
        python(ECHO),
        container={"env": env, "ports": [{"name": "http", "containerPort": 8080}]},
    )
    spec["metadata"]["labels"] = {"app": "echo"}
    cluster.api.create("Pod", spec, namespace)
    cluster.wait_for_pod(
        namespace,
        "echo",
        lambda p: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        ),
        describe="echo Ready",
    )
    cluster.follow_log(namespace, "echo").wait_for_line("listening")
    # when a Service selects it
    service = {
        "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    created = cluster.api.create("Service", service, namespace)
    cluster_ip = created["spec"]["clusterIP"]
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(control_plane.service_cidr)
    # then its cluster IP answers with the pod
    proxy.wait_for_listener((cluster_ip, 80))
    assert ask((cluster_ip, 80), b"ping") == b"hello from echo got ping"
    # and a Service deleted stops being served
    cluster.api.delete("Service", "echo", namespace)
    proxy.wait_for_listener((cluster_ip, 80), present=False)
