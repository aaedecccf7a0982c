"""The test cluster's stand-in for kube-proxy: Services' cluster IPs made reachable on this machine.

The apiserver gives every Service a cluster IP from a /16 of 127.0.0.0/8 (``--service-cluster-ip-range``),
loopback addresses this machine answers on. For each such Service ``ServiceProxy`` listens on
``clusterIP:port`` for every TCP port, and forwards each connection to a Ready pod the Service's
selector picks (pod IP : ``targetPort``, a named port resolved from the pod's containers). That is
how the apiserver reaches an admission webhook by its ``service:`` reference.

Why it selects pods itself instead of reading EndpointSlices as kube-proxy does: the process-kubelet's
pods live on 127.x addresses, and the apiserver refuses loopback addresses in EndpointSlices ("may not
be in the loopback range"), so the EndpointSlice controller cannot publish them.

A Service without a selector gets no forwarding, except ``default/kubernetes``, which is forwarded to
the apiserver itself when ``apiserver`` is given (its serving certificate must name the cluster IP
for TLS clients to accept it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bf_jupyter.kubeapi import KubeApi, KubeApiError, KubeUnavailable, watch_event_from_line
from bf_jupyter.kubestreams import AsyncLineStream

Obj = dict[str, Any]
_KUBERNETES = ("default", "kubernetes")  # the apiserver's own Service
_log = logging.getLogger(__name__)


def is_ready(pod: Obj) -> bool:
    """Ready (its Ready condition True), not terminating, with an IP."""
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return ready and bool(status.get("podIP")) and not pod["metadata"].get("deletionTimestamp")


def selects(selector: dict[str, str], pod: Obj) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def target_port(port: Obj, pod: Obj) -> int | None:
    """A Service port's ``targetPort`` on ``pod``: a number, or a container port's name."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == target and declared.get("protocol", "TCP") == "TCP":
                return int(declared["containerPort"])
    return None


@dataclass
class _Listener:
    service: tuple[str, str]  # namespace, name
    port: Obj
    server: asyncio.AbstractServer
    connections: set[asyncio.Task[None]] = field(default_factory=set)


class ServiceProxy:
    """Start with ``start()``, end with ``stop()`` (every listener and connection closes)."""

    def __init__(
        self,
        kubeconfig: Path,
        *,
        apiserver: tuple[str, int] | None = None,
        dns_file: Path | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.apiserver = apiserver
        # ``<name>.<namespace>.svc`` → cluster IP, as JSON, for the pods' DNS stand-in
        self.dns_file = dns_file
        self.services: dict[tuple[str, str], Obj] = {}
        self.pods: dict[str, Obj] = {}  # uid → pod
        self._listeners: dict[tuple[str, int], _Listener] = {}  # (cluster IP, port) → listener
        self._turn = itertools.count()
        self._api: KubeApi | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="service-proxy", daemon=True
        )
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._synced: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Condition()  # bound to the loop on first use (Python 3.10+)

    # ----- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ServiceProxy:
        """Watch Services and pods; returns once both are listed (listeners open)."""
        self._thread.start()
        try:
            self._call(self._start(), timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            try:
                self._call(self._stop(), timeout=30)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def wait_for_listener(
        self, address: tuple[str, int], *, present: bool = True, timeout: float = 30
    ) -> None:
        """Until ``address`` (cluster IP, port) is served (or, ``present=False``, no longer is);
        raises ``TimeoutError`` naming what is served."""
        self._call(self._wait_for_listener(address, present, timeout), timeout + 5)

    async def _wait_for_listener(
        self, address: tuple[str, int], present: bool, timeout: float
    ) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: (address in self._listeners) == present),
                    timeout,
                )
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"{address[0]}:{address[1]} {'not yet' if present else 'still'} served after "
                    f"{timeout:g}s; serving {sorted(self._listeners)}"
                ) from None

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        self._api = KubeApi.connect(kubeconfig=str(self.kubeconfig), request_timeout=30)
        self._synced = {"Service": asyncio.Event(), "Pod": asyncio.Event()}
        self._tasks = [
            self._loop.create_task(self._follow("Service", self._on_service)),
            self._loop.create_task(self._follow("Pod", self._on_pod)),
        ]
        await asyncio.gather(*(e.wait() for e in self._synced.values()))
        for key in list(self.services):
            await self._sync_listeners(key)

    async def _stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for address in list(self._listeners):
            await self._close_listener(address)
        if self._api is not None:
            self._api.close()

    # ----- watching -------------------------------------------------------------------------------

    async def _follow(
        self, kind: str, handle: Callable[[str, Obj], Coroutine[Any, Any, None]]
    ) -> None:
        """List, then watch ``kind`` in every namespace, for ever (relisting after 410 Gone)."""
        assert self._api is not None and self._stopping is not None
        api = self._api
        while not self._stopping.is_set():
            try:
                listed = await asyncio.to_thread(api.list, kind)
                await handle("SYNC", {"items": listed})
                self._synced[kind].set()
                async for event_type, obj in self._watch(kind):
                    await handle(event_type, obj)
            except (KubeApiError, KubeUnavailable) as error:
                if not (isinstance(error, KubeApiError) and error.status == 410):
                    _log.warning("service proxy: %s watch failed: %s", kind, error)
                    await asyncio.sleep(1)

    async def _watch(self, kind: str) -> AsyncIterator[tuple[str, Obj]]:
        assert self._api is not None
        version = ""
        while True:
            # start from "now": the listing above (or the last event) holds the state before it
            opener = partial(
                self._api.open_watch,
                kind,
                None,
                resource_version=version or None,
                timeout_seconds=300,
            )
            async with AsyncLineStream(opener) as lines:
                async for line in lines:
                    event = watch_event_from_line(line)
                    if event is None:
                        continue
                    version = event.object["metadata"].get("resourceVersion", version)
                    if event.type != "BOOKMARK":
                        yield event.type, event.object

    async def _on_service(self, event_type: str, obj: Obj) -> None:
        if event_type == "SYNC":
            listed = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in obj["items"]}
            gone = set(self.services) - set(listed)
            self.services = listed
            if self._synced["Service"].is_set():
                for key in [*gone, *listed]:
                    await self._sync_listeners(key)
            return
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if event_type == "DELETED":
            self.services.pop(key, None)
        else:
            self.services[key] = obj
        await self._sync_listeners(key)

    async def _on_pod(self, event_type: str, obj: Obj) -> None:
        if event_type == "SYNC":
            self.pods = {p["metadata"]["uid"]: p for p in obj["items"]}
        elif event_type == "DELETED":
            self.pods.pop(obj["metadata"]["uid"], None)
        else:
            self.pods[obj["metadata"]["uid"]] = obj

    # ----- listeners ------------------------------------------------------------------------------

    def _wanted(self, service: Obj) -> dict[tuple[str, int], Obj]:
        spec = service.get("spec") or {}
        wanted: dict[tuple[str, int], Obj] = {}
        key = (service["metadata"]["namespace"], service["metadata"]["name"])
        if not spec.get("selector") and not (key == _KUBERNETES and self.apiserver):
            return wanted  # nothing to forward to
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            try:
                if not ip or not ipaddress.ip_address(ip).is_loopback:
                    continue
            except ValueError:
                continue
            for port in spec.get("ports") or []:
                if port.get("protocol", "TCP") == "TCP":
                    wanted[(ip, int(port["port"]))] = port
        return wanted

    def _write_dns(self) -> None:
        if self.dns_file is None:
            return
        table = {
            f"{name}.{namespace}.svc": (service.get("spec") or {}).get("clusterIP")
            for (namespace, name), service in self.services.items()
            if (service.get("spec") or {}).get("clusterIP") not in (None, "", "None")
        }
        partial_file = self.dns_file.with_suffix(".partial")
        partial_file.write_text(json.dumps(table))
        partial_file.replace(self.dns_file)  # readers never see half a table

    async def _sync_listeners(self, key: tuple[str, str]) -> None:
        self._write_dns()
        service = self.services.get(key)
        wanted = self._wanted(service) if service is not None else {}
        for address, listener in list(self._listeners.items()):
            if listener.service == key and address not in wanted:
                await self._close_listener(address)
        for address, port in wanted.items():
            current = self._listeners.get(address)
            if current is not None:
                current.port = port
                continue
            try:
                server = await asyncio.start_server(
                    partial(self._accept, address), host=address[0], port=address[1]
                )
            except OSError as error:
                _log.warning("service proxy: cannot listen on %s:%d: %s", *address, error)
                continue
            self._listeners[address] = _Listener(key, port, server)
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _close_listener(self, address: tuple[str, int]) -> None:
        listener = self._listeners.pop(address, None)
        if listener is None:
            return
        await self._notify()
        listener.server.close()
        for task in list(listener.connections):
            task.cancel()
        with contextlib.suppress(Exception):
            await listener.server.wait_closed()

    def backend(self, key: tuple[str, str], port: Obj) -> tuple[str, int] | None:
        """Where a new connection to the Service's ``port`` goes now (round robin over Ready pods)."""
        if key == _KUBERNETES and self.apiserver is not None:
            return self.apiserver
        service = self.services.get(key)
        if service is None:
            return None
        selector = (service.get("spec") or {}).get("selector") or {}
        choices: list[tuple[str, int]] = []
        for pod in self.pods.values():
            if pod["metadata"].get("namespace") != key[0] or not selects(selector, pod):
                continue
            number = target_port(port, pod)
            if number is not None and is_ready(pod):
                choices.append((pod["status"]["podIP"], number))
        if not choices:
            return None
        return sorted(choices)[next(self._turn) % len(choices)]

    async def _accept(
        self, address: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        listener = self._listeners.get(address)
        task = asyncio.current_task()
        if listener is None or task is None:
            writer.close()
            return
        listener.connections.add(task)
        try:
            target = self.backend(listener.service, listener.port)
            if target is None:  # kube-proxy rejects a Service without endpoints
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*target)
            except OSError:
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except asyncio.CancelledError:
            pass
        finally:
            listener.connections.discard(task)
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()
