"""The test cluster's control plane: etcd, kube-apiserver, kube-scheduler and
kube-controller-manager of the pinned release, run as local process groups on 127.0.0.1.

The apiserver runs as a production cluster's does: TLS with client certificates, Node and RBAC
authorization, the default admission plugins plus NodeRestriction, ResourceQuota and the admission
webhooks, a service-account issuer. Services get ClusterIPs in a /16 of 127.0.0.0/8 drawn per
control plane (loopback, so the kube-proxy stand-in can listen on them); the endpoint reconciler is off because EndpointSlices refuse
loopback addresses. Every port is chosen free at start (a component that loses the race for its port
is restarted on another); the scheduler and the controller manager start together once the apiserver
is ready.

    plane = ControlPlane(tmp_path / "cluster").start()
    try:
        plane.kubectl("get", "--raw", "/readyz")
    finally:
        plane.stop()  # ends every process and removes the root folder
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bf_jupyter.cluster.certs import service_names
from tests.cluster.binaries import ControlPlaneBinaries, find_binaries
from tests.cluster.pki import CertificateAuthority, KeyPair, kubeconfig_text, new_signing_key
from tests.support.managed_process import ManagedProcess


def loopback_service_range() -> str:
    """A /16 of 127.0.0.0/8 for Services, drawn per control plane so that two test sessions on one
    machine never listen on each other's cluster IPs (pods use 127.1–199.x.y)."""
    return f"127.{random.randint(200, 254)}.0.0/16"


SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
COMPONENTS = ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager")
ADMISSION_PLUGINS = (
    "NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,DefaultStorageClass,"
    "NodeRestriction,PodSecurity,Priority,RuntimeClass,MutatingAdmissionWebhook,"
    "ValidatingAdmissionWebhook,ResourceQuota"
)
_PORT_ATTEMPTS = 3
_LOG_LINES = 20
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class ControlPlaneError(RuntimeError):
    """A component failed to start or to become ready; the message names it and shows its log."""


@dataclass(frozen=True)
class _Launch:
    """How to run one component: its argv for the ports it was given, and when it is ready."""

    name: str
    ports: int
    argv: Callable[[tuple[int, ...]], list[str]]
    ready: Callable[[tuple[int, ...]], bool]


class ControlPlane:
    """One control plane under ``root`` (an absent or empty folder that ``stop()`` removes).

    ``extra_args`` adds flags to a component by name (one of ``COMPONENTS``), e.g. to test a fault.
    Raises ``MissingBinariesError`` when ``binaries`` is None and the cache holds no build.
    """

    def __init__(
        self,
        root: Path,
        binaries: ControlPlaneBinaries | None = None,
        *,
        extra_args: Mapping[str, Sequence[str]] | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        unknown = sorted(set(extra_args or {}) - set(COMPONENTS))
        if unknown:
            raise ValueError(
                f"extra_args names {', '.join(unknown)}: use one of {', '.join(COMPONENTS)}"
            )
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ValueError(f"control plane root {root} must be absent or an empty folder")
        self.root = root
        self.binaries = binaries if binaries is not None else find_binaries()
        self.startup_timeout = startup_timeout
        self.ca = CertificateAuthority()
        self.kubeconfig = root / "kubeconfigs" / "admin.kubeconfig"
        self.server = ""
        self.audit_log = root / "audit.log"
        self.service_cidr = loopback_service_range()
        self._extra_args = {name: list(args) for name, args in (extra_args or {}).items()}
        self._pki = root / "pki"
        self._processes: dict[str, ManagedProcess] = {}
        self._ports: dict[str, tuple[int, ...]] = {}
        self._tls_contexts: dict[bool, ssl.SSLContext] = {}

    # ----- what clients of the cluster use -------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        """The cluster CA's certificate (PEM file), e.g. for ``kubectl --certificate-authority``."""
        return self._pki / "ca.crt"

    @property
    def kubelet_client_ca_pem(self) -> bytes:
        """The CA a kubelet trusts for the apiserver's kubelet-client certificate (logs, exec)."""
        return self.ca.cert_pem

    @property
    def apiserver_address(self) -> tuple[str, int]:
        """Host and port of the apiserver (after ``start()``)."""
        return "127.0.0.1", self._ports["kube-apiserver"][0]

    def audit_events(self, username: str | None = None) -> list[dict[str, Any]]:
        """The apiserver's audit events so far (stage ResponseComplete), those of ``username`` only
        when given. Each carries ``verb``, ``objectRef`` and the authorization decision in
        ``annotations["authorization.k8s.io/decision"]`` (``allow`` or ``forbid``)."""
        if not self.audit_log.exists():
            return []
        events = []
        for line in self.audit_log.read_text().splitlines():
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete":
                continue
            if username is None or (event.get("user") or {}).get("username") == username:
                events.append(event)
        return events

    def _audit_policy(self) -> Path:
        path = self.root / "audit-policy.yaml"
        _write(
            path,
            b"apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
            b"rules:\n  - level: Metadata\n",
        )
        return path

    def issue_serving_cert(self, hosts: list[str]) -> tuple[bytes, bytes]:
        """A serving certificate (PEM cert, PEM key) for ``hosts`` that the apiserver trusts."""
        pair = self.ca.issue_serving(hosts)
        return pair.cert_pem, pair.key_pem

    def node_kubeconfig(self, node_name: str) -> Path:
        """A kubeconfig for the kubelet of ``node_name`` (user ``system:node:<name>`` in
        ``system:nodes``, so the Node authorizer and NodeRestriction apply to it)."""
        if not _NODE_NAME.fullmatch(node_name):
            raise ValueError(f"node name {node_name!r} is not a lowercase DNS subdomain")
        pair = self.ca.issue_client(f"system:node:{node_name}", ["system:nodes"])
        return self._write_kubeconfig(f"node-{node_name}", pair)

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl (as cluster-admin unless ``kubeconfig``); a non-zero exit does not
        raise: the caller reads ``returncode`` and ``stderr``."""
        argv = [str(self.binaries.kubectl), "--kubeconfig", str(kubeconfig or self.kubeconfig)]
        return subprocess.run(
            [*argv, *args], input=input, capture_output=True, text=True, timeout=60, check=False
        )

    def pids(self) -> list[int]:
        """The process ids of the running components (each leads its own process group)."""
        return [process.pid for process in self._processes.values()]

    # ----- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        """Start every component and wait until the cluster serves requests: apiserver ``/readyz``,
        scheduler and controller manager ``/healthz``, the ``default`` ServiceAccount exists.

        Raises ``ControlPlaneError`` naming the component that failed, with its last log lines;
        nothing started is left running then.
        """
        try:
            self._write_pki()
            self._start_together([self._etcd()])
            self._start_together([self._apiserver()])
            self.server = f"https://127.0.0.1:{self._ports['kube-apiserver'][0]}"
            self._write_kubeconfigs()
            self._start_together([self._scheduler(), self._controller_manager()])
            self._wait_for_default_service_account()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """End every process group started (SIGTERM, then SIGKILL) and remove the root folder."""
        etcd = self._processes.pop("etcd", None)
        with ThreadPoolExecutor(max_workers=len(COMPONENTS)) as pool:
            list(pool.map(lambda process: process.stop(), self._processes.values()))
        if etcd is not None:
            etcd.stop()
        self._processes.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----- the components ------------------------------------------------------------------------

    def _etcd(self) -> _Launch:
        def argv(ports: tuple[int, ...]) -> list[str]:
            client, peer = (f"http://127.0.0.1:{port}" for port in ports)
            return [
                str(self.binaries.etcd),
                "--name=test",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=test={peer}",
                # A throwaway test store: durability across power loss buys nothing here.
                "--unsafe-no-fsync",
            ]

        return _Launch("etcd", 2, argv, lambda ports: _http_ok(ports[0], "/health"))

    def _apiserver(self) -> _Launch:
        pki = self._pki
        etcd = f"http://127.0.0.1:{self._ports['etcd'][0]}"

        def argv(ports: tuple[int, ...]) -> list[str]:
            return [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers={etcd}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={ports[0]}",
                f"--cert-dir={self.root / 'apiserver'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                f"--enable-admission-plugins={ADMISSION_PLUGINS}",
                "--allow-privileged=true",
                f"--service-cluster-ip-range={self.service_cidr}",
                # The kubernetes Service would get the advertise address, which EndpointSlices refuse.
                "--endpoint-reconciler-type=none",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                # every request with RBAC's verdict, for tests that compare shipped RBAC with use
                f"--audit-policy-file={self._audit_policy()}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
            ]

        return _Launch(
            "kube-apiserver", 1, argv, lambda ports: _https_ok(ports[0], "/readyz", self._tls())
        )

    def _scheduler(self) -> _Launch:
        kubeconfig = self.root / "kubeconfigs" / "kube-scheduler.kubeconfig"

        def argv(ports: tuple[int, ...]) -> list[str]:
            return [
                str(self.binaries.kube_scheduler),
                *self._secure_serving_args("kube-scheduler", kubeconfig, ports[0]),
            ]

        return _Launch("kube-scheduler", 1, argv, self._healthz)

    def _controller_manager(self) -> _Launch:
        kubeconfig = self.root / "kubeconfigs" / "kube-controller-manager.kubeconfig"
        pki = self._pki

        def argv(ports: tuple[int, ...]) -> list[str]:
            return [
                str(self.binaries.kube_controller_manager),
                *self._secure_serving_args("kube-controller-manager", kubeconfig, ports[0]),
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
            ]

        return _Launch("kube-controller-manager", 1, argv, self._healthz)

    def _secure_serving_args(self, name: str, kubeconfig: Path, port: int) -> list[str]:
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={self._pki / 'loopback.crt'}",
            f"--tls-private-key-file={self._pki / 'loopback.key'}",
            "--leader-elect=false",
        ]

    def _healthz(self, ports: tuple[int, ...]) -> bool:
        return _https_ok(ports[0], "/healthz", self._tls(client=False))

    # ----- starting ------------------------------------------------------------------------------

    def _start_together(self, launches: list[_Launch]) -> None:
        """Start ``launches`` at once and wait until each is ready; a component that lost the race
        for a free port is restarted on new ones."""
        attempts = dict.fromkeys((launch.name for launch in launches), 1)
        pending = {launch.name: launch for launch in launches}
        for launch in launches:
            self._spawn(launch)
        deadline = time.monotonic() + self.startup_timeout
        while pending:
            for name, launch in list(pending.items()):
                process = self._processes[name]
                code = process.exit_code()
                if code is not None:
                    process.stop()
                    tail = process.tail(_LOG_LINES)
                    if "address already in use" in tail and attempts[name] < _PORT_ATTEMPTS:
                        attempts[name] += 1
                        self._spawn(launch)
                        continue
                    raise _exited(name, code, tail)
                if launch.ready(self._ports[name]):
                    del pending[name]
            if pending and time.monotonic() > deadline:
                name = next(iter(pending))
                raise ControlPlaneError(
                    f"{name} was not ready within {self.startup_timeout:g}s; "
                    f"its last log lines:\n{self._processes[name].tail(_LOG_LINES)}"
                )
            if pending:
                self._raise_if_any_exited()
                time.sleep(0.1)

    def _spawn(self, launch: _Launch) -> None:
        ports = _free_ports(launch.ports)
        argv = [*launch.argv(ports), *self._extra_args.get(launch.name, [])]
        log = self.root / "logs" / f"{launch.name}.log"
        self._ports[launch.name] = ports
        self._processes[launch.name] = ManagedProcess(
            launch.name, argv, env=os.environ, log_path=log
        )

    def _wait_for_default_service_account(self) -> None:
        # The controller manager's serviceaccount controller creates it: it is the last to be ready.
        deadline = time.monotonic() + self.startup_timeout
        path = "/api/v1/namespaces/default/serviceaccounts/default"
        while not _https_ok(self._ports["kube-apiserver"][0], path, self._tls()):
            if time.monotonic() > deadline:
                tail = self._processes["kube-controller-manager"].tail(_LOG_LINES)
                raise ControlPlaneError(
                    "kube-controller-manager did not create the default ServiceAccount within "
                    f"{self.startup_timeout:g}s; its last log lines:\n{tail}"
                )
            self._raise_if_any_exited()
            time.sleep(0.1)

    def _raise_if_any_exited(self) -> None:
        """A component that was ready and has exited since fails the start too."""
        for name, process in self._processes.items():
            code = process.exit_code()
            if code is not None:
                process.stop()
                raise _exited(name, code, process.tail(_LOG_LINES))

    # ----- certificates and kubeconfigs ----------------------------------------------------------

    def _write_pki(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self._pki.mkdir(mode=0o700)
        ca = self.ca
        first_service_ip = str(next(ipaddress.ip_network(self.service_cidr).hosts()))
        apiserver_hosts = ["127.0.0.1", "localhost", first_service_ip, "kubernetes"]
        apiserver_hosts += service_names("kubernetes", "default")[1:]
        pairs = {
            "ca": KeyPair(ca.cert_pem, ca.key_pem),
            "apiserver": ca.issue_serving(apiserver_hosts),
            "loopback": ca.issue_serving(["127.0.0.1", "localhost"]),
            "apiserver-kubelet-client": ca.issue_client(
                "kube-apiserver-kubelet-client", ["system:masters"]
            ),
        }
        for name, pair in pairs.items():
            _write(self._pki / f"{name}.crt", pair.cert_pem)
            _write(self._pki / f"{name}.key", pair.key_pem)
        public, private = new_signing_key()
        _write(self._pki / "sa.pub", public)
        _write(self._pki / "sa.key", private)
        # The readiness probes authenticate as cluster-admin with these files.
        admin = ca.issue_client("kubernetes-admin", ["system:masters"])
        _write(self._pki / "admin.crt", admin.cert_pem)
        _write(self._pki / "admin.key", admin.key_pem)

    def _write_kubeconfigs(self) -> None:
        admin = KeyPair(
            (self._pki / "admin.crt").read_bytes(), (self._pki / "admin.key").read_bytes()
        )
        self._write_kubeconfig("admin", admin)
        for component in ("kube-scheduler", "kube-controller-manager"):
            self._write_kubeconfig(component, self.ca.issue_client(f"system:{component}"))

    def _write_kubeconfig(self, name: str, client: KeyPair) -> Path:
        """A kubeconfig for ``client`` with its certificate embedded."""
        if not self.server:
            raise RuntimeError("the control plane is not started: its apiserver has no address yet")
        path = self.root / "kubeconfigs" / f"{name}.kubeconfig"
        path.parent.mkdir(mode=0o700, exist_ok=True)
        _write(path, kubeconfig_text(self.server, self.ca.cert_pem, name, client).encode())
        return path

    def _tls(self, *, client: bool = True) -> ssl.SSLContext:
        """The probes' TLS context: trusts the cluster CA, presents cluster-admin's certificate."""
        if client not in self._tls_contexts:
            context = ssl.create_default_context(cadata=self.ca.cert_pem.decode("ascii"))
            if client:
                context.load_cert_chain(self._pki / "admin.crt", self._pki / "admin.key")
            self._tls_contexts[client] = context
        return self._tls_contexts[client]


def _exited(name: str, code: int, tail: str) -> ControlPlaneError:
    return ControlPlaneError(
        f"{name} exited with code {code} while starting; its last log lines:\n{tail}"
    )


def _free_ports(count: int) -> tuple[int, ...]:
    """``count`` distinct ports free right now (a component that loses a race is restarted)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return tuple(int(sock.getsockname()[1]) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def _http_ok(port: int, path: str) -> bool:
    return _request_ok(http.client.HTTPConnection("127.0.0.1", port, timeout=2), path)


def _https_ok(port: int, path: str, context: ssl.SSLContext) -> bool:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
    return _request_ok(connection, path)


def _request_ok(connection: http.client.HTTPConnection, path: str) -> bool:
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _write(path: Path, data: bytes) -> None:
    # Everything here is a credential or sits next to one: owner-only.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
