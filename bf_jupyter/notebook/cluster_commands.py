"""The ``%bitfusion`` subcommands that talk to the cluster: ``submit``, ``jobs``, ``logs``,
``cancel`` and the quota line of ``status`` — all through ``bf_jupyter.kubeapi``.

Errors are one line: no cluster configured, the API's own message (quota exceeded, webhook denial,
not found), an image that cannot be pulled (the pod ``submit`` created is then deleted: nothing is
left behind). Following stops on a kernel interrupt; the work keeps running on the cluster.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from bf_jupyter.backends import (
    DEFAULT_BACKEND,
    NO_OFFER,
    GpuBackend,
    Offer,
    UnknownBackend,
    get_backend,
)
from bf_jupyter.backends.base import FORM_MIG
from bf_jupyter.contract import ENV_GPU_BACKEND
from bf_jupyter.identity import current_user
from bf_jupyter.kubeapi import KubeApi, KubeApiError, KubeUnavailable
from bf_jupyter.notebook.cluster_workload import (
    CONTAINER_NAME,
    build_workload,
    check_name,
    format_rows,
    ownership_problem,
    pod_outcome,
    pod_problem,
    quota_text,
    row_of,
    workload_name,
    workload_selector,
)
from bf_jupyter.notebook.magic_args import MagicError, ParsedLine
from bf_jupyter.notebook.output_stream import CurveFeed, OutputRouter
from bf_jupyter.slice import GpuSlice, SliceError

if TYPE_CHECKING:
    from bf_jupyter.kubeapi import Obj

__all__ = ["ClusterCommands"]

START_TIMEOUT = 600  # seconds a submitted pod may stay Pending before we stop waiting


class ClusterCommands:
    """Runs the cluster subcommands. ``connect`` makes the API connection (tests pass a fake);
    ``namespace`` is the configured one ('' = the kernel's own, see ``KubeApi.default_namespace``)."""

    def __init__(
        self,
        *,
        namespace: str = "",
        connect: Callable[[], Any] = KubeApi.connect,
        default_namespace: Callable[[], str] = KubeApi.default_namespace,
        user: str | None = None,
    ) -> None:
        self._namespace = namespace
        self._connect = connect
        self._default_namespace = default_namespace
        self._user = user or current_user()

    def namespace(self, explicit: str | None) -> str:
        return explicit or self._namespace or self._default_namespace()

    def run(self, parsed: ParsedLine) -> None:
        """Run one of submit, jobs, logs, cancel; every failure becomes a one-line ``MagicError``."""
        handler = {
            "submit": self.submit,
            "jobs": self.jobs,
            "logs": self.logs,
            "cancel": self.cancel,
        }[parsed.subcommand]
        api = self._api(parsed.subcommand)
        try:
            handler(api, parsed, self.namespace(parsed.options.namespace))
        except KubeUnavailable as error:
            raise MagicError(parsed.subcommand, str(error)) from None
        except KubeApiError as error:
            raise MagicError(parsed.subcommand, str(error)) from None
        finally:
            with contextlib.suppress(Exception):
                api.close()

    def _api(self, subcommand: str) -> Any:
        try:
            return self._connect()
        except KubeUnavailable as error:
            raise MagicError(subcommand, str(error)) from None
        except ImportError as error:  # the kubernetes client comes with the 'cluster' extra
            raise MagicError(
                subcommand,
                f"the Kubernetes client is not installed ({error}): pip install 'bf-jupyter[cluster]'",
            ) from None

    def quota_line(self, explicit_namespace: str | None) -> tuple[str, str]:
        """(namespace, quota text) for ``status``; never raises."""
        try:
            namespace = self.namespace(explicit_namespace)
            api = self._connect()
        except KubeUnavailable:
            return "-", "no Kubernetes cluster configured"
        except Exception as error:  # status must answer even when the client is missing or odd
            return "-", f"unavailable ({error})"
        try:
            return namespace, quota_text(api.list("ResourceQuota", namespace))
        except (KubeApiError, KubeUnavailable) as error:
            return namespace, f"unavailable ({error})"
        finally:
            with contextlib.suppress(Exception):
                api.close()

    # ----- subcommands ---------------------------------------------------------------------------

    def submit(self, api: Any, parsed: ParsedLine, namespace: str) -> None:
        options = parsed.options
        assert parsed.gpu_slice is not None
        try:
            name = check_name(options.name) if options.name else workload_name(parsed.command)
        except ValueError as error:
            raise MagicError("submit", str(error)) from None
        kind = "Job" if options.job else "Pod"
        try:
            gpu_backend = get_backend(
                options.backend or os.environ.get(ENV_GPU_BACKEND) or DEFAULT_BACKEND
            )
            body = build_workload(
                name=name,
                namespace=namespace,
                gpu_slice=parsed.gpu_slice,
                image=options.image,
                command=parsed.command,
                user=self._user,
                job=options.job,
                backend=gpu_backend,
                offer=_offer(api, gpu_backend, parsed.gpu_slice),
            )
        except (UnknownBackend, SliceError) as error:  # nothing was created yet
            raise MagicError("submit", str(error)) from None
        api.create(kind, body, namespace)
        what = f"{kind.lower()} {name}"
        on = "" if gpu_backend.name == DEFAULT_BACKEND else f" ({gpu_backend.title})"
        print(f"created {what} in namespace {namespace} on {parsed.gpu_slice}{on}")
        hint = f"follow: %bitfusion logs {name} -f · stop: %bitfusion cancel {name}"
        if options.detach:
            print(hint)
            return
        try:
            self._follow(api, kind, name, namespace, follow=True, created=True)
        except KeyboardInterrupt:
            raise MagicError(
                "submit", f"stopped following {what}; it keeps running ({hint})"
            ) from None

    def jobs(self, api: Any, parsed: ParsedLine, namespace: str) -> None:
        selector = workload_selector(None if parsed.options.all else self._user)
        jobs = api.list("Job", namespace, label_selector=selector)
        pods = [
            pod
            for pod in api.list("Pod", namespace, label_selector=selector)
            if not any(o.get("kind") == "Job" for o in pod["metadata"].get("ownerReferences") or [])
        ]
        rows = sorted((row_of({"kind": "Job", **j}) for j in jobs), key=lambda r: r.name) + sorted(
            (row_of({"kind": "Pod", **p}) for p in pods), key=lambda r: r.name
        )
        whose = "everyone's" if parsed.options.all else f"{self._user}'s"
        if not rows:
            print(f"no submitted work ({whose}) in namespace {namespace}")
            return
        print(f"submitted work ({whose}) in namespace {namespace}:\n{format_rows(rows)}")

    def logs(self, api: Any, parsed: ParsedLine, namespace: str) -> None:
        name = parsed.options.name
        kind = self._kind_of(api, name, namespace, "logs")
        try:
            self._follow(api, kind, name, namespace, follow=parsed.options.follow, created=False)
        except KeyboardInterrupt:
            raise MagicError("logs", f"stopped following {name}; it keeps running") from None

    def cancel(self, api: Any, parsed: ParsedLine, namespace: str) -> None:
        name = parsed.options.name
        kind = self._kind_of(api, name, namespace, "cancel")
        self._delete_own(api, kind, name, namespace, "cancel")
        print(
            f"deleted {kind.lower()} {name} in namespace {namespace}; its slice is released when its pod ends"
        )

    def _delete_own(self, api: Any, kind: str, name: str, namespace: str, subcommand: str) -> None:
        """Delete the Pod or Job ``name`` only if ``submit`` created it for this user (see
        ``ownership_problem``), and only that very object (its uid). Raises ``MagicError`` with
        the one line saying why not."""
        obj = api.get(kind, name, namespace)
        problem = ownership_problem(obj, self._user)
        if problem is not None:
            raise MagicError(
                subcommand, f"{kind.lower()} {name} in {namespace} {problem}: not deleting it"
            )
        uid = (obj.get("metadata") or {}).get("uid")
        try:
            api.delete(kind, name, namespace, propagation_policy="Background", uid=uid)
        except KubeApiError as error:
            if error.status != 409:
                raise
            raise MagicError(
                subcommand,
                f"{kind.lower()} {name} in {namespace} was replaced since it was checked: not deleting it",
            ) from None

    # ----- following -----------------------------------------------------------------------------

    def _kind_of(self, api: Any, name: str, namespace: str, subcommand: str) -> str:
        for kind in ("Job", "Pod"):
            try:
                api.get(kind, name, namespace)
            except KubeApiError as error:
                if error.not_found:
                    continue
                raise
            return kind
        raise MagicError(subcommand, f"no pod or job named {name} in namespace {namespace}")

    def _follow(
        self, api: Any, kind: str, name: str, namespace: str, *, follow: bool, created: bool
    ) -> None:
        """Wait for the pod to start, stream its log (records become curves), report how it ended."""
        # Stop deletes the workload only when it is this user's own submitted work: another
        # user's, or another tool's, can be followed but never stopped from here.
        own = created or ownership_problem(api.get(kind, name, namespace), self._user) is None
        feed = CurveFeed(
            title=f"{kind.lower()} {name}",
            stop=(lambda: self._stop_from_widget(api, kind, name, namespace, created))
            if own
            else None,
            stop_hint="Stop deletes the workload; its training loop stops cleanly on SIGTERM",
        )
        try:
            pod = self._started_pod(api, kind, name, namespace, feed)
        except _NotStarting as problem:
            if created:
                api.delete(kind, name, namespace, propagation_policy="Background")
                raise MagicError("submit", f"{problem}; deleted {kind.lower()} {name}") from None
            raise MagicError("logs", str(problem)) from None
        pod_name = pod["metadata"]["name"]
        router = OutputRouter(feed)
        lines = api.open_pod_log(pod_name, namespace, container=CONTAINER_NAME, follow=follow)
        try:
            _stream(lines, router.line, router.idle)
        except BaseException:
            feed.close(detached=True)  # we stop following; the pod runs on
            raise
        try:
            final = api.get("Pod", pod_name, namespace)
            if follow and pod_outcome(final)[0] not in TERMINAL_PHASES:
                final = _settled(api, final)
        except KubeApiError as error:
            if not error.not_found:
                raise
            feed.close(stopped=True)  # deleted while we followed it (Stop, or someone's cancel)
            print(f"{kind.lower()} {name} was deleted")
            return
        phase, code, reason = pod_outcome(final)
        if phase not in {"Succeeded", "Failed"}:  # logs without -f of a running pod
            feed.close(detached=True)
            return
        if phase == "Failed":
            feed.close(failed=True)
            detail = f"exit code {code}" if code is not None else "no exit code"
            raise MagicError(
                "submit" if created else "logs",
                f"{kind.lower()} {name} failed ({detail}{', ' + reason if reason else ''})",
            )
        feed.close()
        if phase == "Succeeded":
            print(f"{kind.lower()} {name} succeeded")

    def _stop_from_widget(
        self, api: Any, kind: str, name: str, namespace: str, created: bool
    ) -> None:
        """The Stop button: delete our own workload, or say in one line why not."""
        try:
            self._delete_own(api, kind, name, namespace, "submit" if created else "logs")
        except (MagicError, KubeApiError, KubeUnavailable) as error:
            print(error, file=sys.stderr)

    def _started_pod(self, api: Any, kind: str, name: str, namespace: str, feed: CurveFeed) -> Obj:
        """The workload's pod once it runs or has ended; raises ``_NotStarting`` with the reason."""
        if kind == "Pod":
            selector = {"field_selector": f"metadata.name={name}"}
        else:
            selector = {"label_selector": f"job-name={name}"}
        # closing() ends the watch (and its socket) at once on an interrupt, not when the
        # traceback that holds the generator is dropped.
        events = contextlib.closing(
            api.watch("Pod", namespace, timeout_seconds=START_TIMEOUT, **selector)
        )
        with events as watch:
            return self._first_started(watch, kind, name, feed)

    def _first_started(self, events: Iterator[Any], kind: str, name: str, feed: CurveFeed) -> Obj:
        for event in events:
            pod = event.object
            feed.tick()
            if event.type == "DELETED":
                raise _NotStarting(f"pod {pod['metadata']['name']} was deleted before it started")
            problem = pod_problem(pod)
            if problem:
                raise _NotStarting(problem)
            if (pod.get("status") or {}).get("phase") in {"Running", "Succeeded", "Failed"}:
                return dict(pod)
        raise _NotStarting(f"{kind.lower()} {name} did not start within {START_TIMEOUT} s")


class _NotStarting(Exception):
    """A workload's pod cannot start; the message says why."""


class ClosableLines(Protocol):
    """A stream of lines that any thread may close, waking a reader blocked on it (``LineStream``)."""

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


_QUEUED_LINES = 1000  # lines read ahead of the cell's output: the reader waits beyond that


def _offer(api: Any, backend: GpuBackend, gpu_slice: GpuSlice) -> Offer:
    """What the cluster offers that rendering ``gpu_slice`` needs: only a memory slice on a MIG
    backend does (the MIG profiles the nodes advertise); nothing when the nodes cannot be read
    (the refusal then says no profile is offered)."""
    if gpu_slice.kind != "memory" or FORM_MIG not in backend.forms:
        return NO_OFFER
    try:
        nodes = api.list("Node", None)
    except (KubeApiError, KubeUnavailable):
        return NO_OFFER
    return backend.read_pool(nodes, None).offer()


def _stream(
    lines: ClosableLines,
    on_line: Callable[[str, str], None],
    on_idle: Callable[[], None],
    idle_interval: float = 0.1,
) -> None:
    """Read ``lines`` in a thread (a log stream blocks) and deliver them here, calling ``on_idle``
    in quiet moments so the widget stays responsive. However this ends (the end of the stream,
    an error, a KeyboardInterrupt) the stream is closed and the reader thread has ended."""
    box: queue.Queue[tuple[str | None, BaseException | None]] = queue.Queue(_QUEUED_LINES)
    stop = threading.Event()

    def put(item: tuple[str | None, BaseException | None]) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                box.put(item, timeout=idle_interval)
                return

    def read() -> None:
        try:
            for line in lines:
                put((line, None))
                if stop.is_set():
                    return
            put((None, None))
        except BaseException as error:  # handed to the caller's thread
            put((None, error))

    reader = threading.Thread(target=read, name="bf-pod-log", daemon=True)
    reader.start()
    try:
        _deliver(box, on_line, on_idle, idle_interval)
    finally:
        stop.set()
        lines.close()  # wakes the reader if it is blocked on the socket
        reader.join()


def _deliver(
    box: queue.Queue[tuple[str | None, BaseException | None]],
    on_line: Callable[[str, str], None],
    on_idle: Callable[[], None],
    idle_interval: float,
) -> None:
    while True:
        try:
            line, error = box.get(timeout=idle_interval)
        except queue.Empty:
            on_idle()
            continue
        if error is not None:
            raise error
        if line is None:
            return
        on_line("stdout", line)
        if box.empty():
            on_idle()


TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
SETTLE_SECONDS = 30


def _settled(api: Any, pod: Obj) -> Obj:
    """The pod once its phase is terminal: a log ends when the container exits, and the kubelet
    reports that a moment later. Raises ``KubeApiError`` (404) when it is deleted meanwhile; after
    ``SETTLE_SECONDS`` returns what it last saw."""
    meta = pod["metadata"]
    with contextlib.closing(
        api.watch(
            "Pod",
            meta["namespace"],
            field_selector=f"metadata.name={meta['name']}",
            resource_version=meta.get("resourceVersion"),
            timeout_seconds=SETTLE_SECONDS,
        )
    ) as events:
        for event in events:
            if event.type == "DELETED":
                raise KubeApiError("the pod was deleted", status=404, reason="NotFound")
            pod = event.object
            if pod_outcome(pod)[0] in TERMINAL_PHASES:
                break
    return pod
