"""The facade tests use: an emulated cluster running on its own event-loop thread.

``EmulatedCluster.start()`` serves the API over HTTPS on 127.0.0.1 (a throw-away CA from
``trustme``, a bearer token), writes a kubeconfig for it and starts the controllers, the quota
controller, the scheduler and one process-kubelet per node. ``stop()`` ends every pod's process
group, closes every stream and removes every file it made. Production code reaches the cluster
only through the kubeconfig (``KubeApi.connect(kubeconfig=...)``).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import secrets
import shutil
import ssl
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.emulator import errors
from tests.emulator.admission import WebhookAdmission
from tests.emulator.authorization import AuditRecord, Authorizer, User
from tests.emulator.controllers import Controllers
from tests.emulator.device_plugins import DeviceManager
from tests.emulator.jobs import JobController
from tests.emulator.kinds import resource_for_kind
from tests.emulator.kubelet import Kubelet, PodAddresses
from tests.emulator.pod_worker import Allocate, Backoff
from tests.emulator.quota import ResourceQuotas
from tests.emulator.registry import Admission, Registry
from tests.emulator.scheduler import Scheduler
from tests.emulator.store import Store
from tests.emulator.webhook_config import load_webhooks

Obj = dict[str, Any]
T = TypeVar("T")


@dataclass
class NodeSpec:
    """A node: its name and the capacity its kubelet reports before any device plugin registers."""

    name: str = "node-1"
    capacity: dict[str, str] = field(
        default_factory=lambda: {"cpu": "8", "memory": "32Gi", "pods": "110"}
    )


class EmulatedCluster:
    def __init__(
        self,
        *,
        nodes: Sequence[NodeSpec] = (NodeSpec(),),
        admission: Sequence[Admission] = (),
        workdir: Path | None = None,
        allocate: Allocate | None = None,
        backoff: Backoff | None = None,
        device_plugins: bool = False,
        node_env: Mapping[str, str] | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bf-emulator-"))
        self.kubeconfig = self.workdir / "kubeconfig"
        self.token = secrets.token_urlsafe(24)
        self.authorizer = Authorizer(self.token)
        self.store = Store()
        self.registry = Registry(self.store, admission=list(admission), quota=None)
        self.nodes = list(nodes)
        self.server_url = ""
        self._ca_pem = b""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="emulated-cluster", daemon=True
        )
        self._server: Any = None
        self._components: list[Any] = []
        self.kubelets: dict[str, Kubelet] = {}
        self.services: dict[tuple[str, str], tuple[str, int]] = {}
        self.allocate = allocate
        self.device_plugins = device_plugins
        self.node_env = dict(node_env or {})
        self.device_managers: dict[str, DeviceManager] = {}
        self.backoff = backoff or Backoff()

    # ----- lifecycle ------------------------------------------------------------------------------

    def start(self) -> EmulatedCluster:
        self._thread.start()
        try:
            self.call(self._start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop pods (their process groups), streams, the server and the loop; remove the files."""
        if self._thread.is_alive():
            try:
                self.call(self._stop(), timeout=60)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmulatedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coro`` on the cluster's loop and return its result (from any other thread)."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    # ----- admission webhooks ------------------------------------------------------------------------

    def use_webhooks(
        self, manifests: Iterable[Obj], *, ca_bundle: bytes | None = None
    ) -> WebhookAdmission:
        """Call the webhooks that the Mutating/ValidatingWebhookConfigurations among ``manifests``
        declare, from now on (after any admission given at construction). ``ca_bundle`` fills an
        empty ``caBundle`` as a CA injector would."""
        mutating, validating = load_webhooks(manifests, ca_bundle=ca_bundle)
        admission = WebhookAdmission(self.store, mutating, validating, services=self.services)

        async def install() -> None:
            self.registry.admission.append(admission)

        self.call(install())
        return admission

    def expose_service(self, namespace: str, name: str, address: tuple[str, int]) -> None:
        """Resolve Service ``namespace/name`` to ``address`` (as its endpoints would)."""

        async def install() -> None:
            self.services[(namespace, name)] = address

        self.call(install())

    def set_namespace_env(self, namespace: str, env: Mapping[str, str]) -> None:
        """Environment every kubelet adds to the containers of ``namespace``'s pods (on top of
        ``node_env``), e.g. a per-test ``BF_SIM_HOME``."""

        async def install() -> None:
            for kubelet in self.kubelets.values():
                kubelet.namespace_env[namespace] = dict(env)

        self.call(install())

    # ----- users other than the admin, and what RBAC lets them do ---------------------------------

    def add_user(self, user: User, *, namespace: str = "default") -> Path:
        """A kubeconfig (context namespace ``namespace``) that authenticates as ``user``, whose
        requests RBAC then decides (``grant``) and the audit records."""
        token = self.authorizer.add_user(user)
        path = self.workdir / f"kubeconfig-{secrets.token_hex(4)}"
        self._write_kubeconfig(
            self._ca_pem, path=path, token=token, user=user.name, namespace=namespace
        )
        return path

    def grant(self, objects: Iterable[Obj]) -> None:
        """Roles, ClusterRoles and their bindings, as ``kubectl apply`` of them would create."""
        self.authorizer.grant(objects)

    def audit(self, user: str | None = None) -> list[AuditRecord]:
        """Requests of users other than the admin, with RBAC's verdict, oldest first."""
        return self.authorizer.audit(user)

    # ----- inside the loop ------------------------------------------------------------------------

    async def _start(self) -> None:
        import tornado.httpserver
        import trustme

        from tests.emulator.http_api import make_app

        self.registry.quota = ResourceQuotas(self.store)
        self._components.append(Controllers(self.registry))
        for name in ("default", "kube-system", "kube-public"):
            await self.registry.create(
                resource_for_kind("Namespace"), "", {"metadata": {"name": name}}
            )
        await self._start_nodes()
        self._components.append(Scheduler(self.registry))
        self._components.append(JobController(self.registry))
        addresses = PodAddresses()
        for node in self.nodes:
            root = self.workdir / "kubelet" / node.name
            kubelet = Kubelet(
                self.registry,
                node.name,
                root / "pods",
                addresses=addresses,
                allocate=self.allocate,
                backoff=self.backoff,
                node_env=self.node_env,
            )
            self.kubelets[node.name] = kubelet
            self._components.append(kubelet)
            if self.device_plugins:
                manager = DeviceManager(self.registry, node.name, root / "device-plugins")
                await manager.start()
                kubelet.devices = manager
                self.device_managers[node.name] = manager
                self._components.append(manager)

        authority = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        app = make_app(self.registry, authorizer=self.authorizer, logs=self._log_source())
        self._server = tornado.httpserver.HTTPServer(app, ssl_options=context)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self._server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        self.server_url = f"https://127.0.0.1:{port}"
        self._ca_pem = authority.cert_pem.bytes()
        self._write_kubeconfig(self._ca_pem)

    async def _start_nodes(self) -> None:
        nodes = resource_for_kind("Node")
        for node in self.nodes:
            body = {
                "metadata": {"name": node.name, "labels": {"kubernetes.io/hostname": node.name}},
                "spec": {},
                "status": {
                    "capacity": dict(node.capacity),
                    "allocatable": dict(node.capacity),
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                        }
                    ],
                    "addresses": [
                        {"type": "InternalIP", "address": "127.0.0.1"},
                        {"type": "Hostname", "address": node.name},
                    ],
                },
            }
            created = await self.registry.create(nodes, "", body)
            created["status"] = body["status"]
            self.registry.update_status_now(nodes, created)

    def _log_source(self) -> Callable[[str, str, dict[str, str]], AsyncIterator[bytes]]:
        async def logs(namespace: str, name: str, options: dict[str, str]) -> AsyncIterator[bytes]:
            pod = self.registry.get(resource_for_kind("Pod"), namespace, name)
            kubelet = self.kubelets.get((pod.get("spec") or {}).get("nodeName") or "")
            if kubelet is None:
                container = options.get("container") or next(
                    (c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []), ""
                )
                raise errors.bad_request(
                    f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
                )
            async for chunk in kubelet.log_stream(pod, options):
                yield chunk

        return logs

    async def _stop(self) -> None:
        for component in reversed(self._components):
            await component.stop()
        self.store.close_all_watches()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()

    def _write_kubeconfig(
        self,
        ca_pem: bytes,
        *,
        path: Path | None = None,
        token: str | None = None,
        user: str = "admin",
        namespace: str = "default",
    ) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "emulator",
                    "cluster": {
                        "server": self.server_url,
                        "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": {"token": token or self.token}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": user, "namespace": namespace},
                }
            ],
            "current-context": "emulator",
        }
        target = path or self.kubeconfig
        target.write_text(yaml.safe_dump(config))
        target.chmod(0o600)
