"""A provisioner base for kernels that run elsewhere: the jupyter_client protocol, written once.

jupyter_client's ``KernelProvisionerBase`` models a local process (poll, wait, signals). Here that
protocol is answered in terms of a few hooks a concrete backend implements (the Kubernetes leaf is
the only one today):

- ``create_remote(start)``: create what runs the kernel; raise ``RemoteStartFailure`` if refused;
- ``watch_start()``: an async iterator of ``Progress``/``Address`` signals until the kernel's
  address is known and beyond; raises ``RemoteStartFailure`` the moment the backend reports a reason;
- ``follow_remote()``: wait for the running kernel to end, return its exit code (a watch, no poll);
- ``stop_remote(grace_seconds)``: ask for the kernel to be stopped; return at once;
- ``release_remote()``: delete everything the kernel used and wait until it is gone;
- ``remote_info()`` / ``restore_remote(info)``: what a restarted server needs to reattach.

Readiness is the kernel's first ``kernel_info_reply``; interrupts are ``interrupt_request`` messages
on the control channel (a remote process cannot be signalled); a failed start deletes what it
created and raises ``KernelLaunchError`` with the backend's reason, published as ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from abc import abstractmethod
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, cast

from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Int, List, Unicode, default
from typing_extensions import override

from bf_jupyter.kernels.environment import kernel_environment
from bf_jupyter.kernels.kernel_channels import request_interrupt
from bf_jupyter.kernels.remote_start import (
    Address,
    Progress,
    RemoteStart,
    RemoteStartFailure,
    connection_info,
    curve_keys,
    kernel_ports,
    until_ready,
)
from bf_jupyter.kernels.sliced_kernel import SlicedKernelMixin

if TYPE_CHECKING:
    from jupyter_client.connect import KernelConnectionInfo


__all__ = ["RemoteKernelProvisioner"]

_KILL_GRACE_SECONDS = 1  # 0 would force-delete from the API before the node stopped the kernel


class RemoteKernelProvisioner(SlicedKernelMixin, KernelProvisionerBase):  # type: ignore[metaclass]
    """The jupyter_client side of a remote kernel; subclasses implement the hooks above."""

    @default("launch_timeout")
    def _default_launch_timeout(self) -> float:
        return 300.0  # a pod may pull its image first

    port_base = Int(
        52700,
        help="First of the ten fixed ports kernels listen on in their pods (two blocks of five; "
        "successive starts alternate so a restarted kernel's ports differ).",
    ).tag(config=True)
    env_allowlist = List(
        Unicode(),
        default_value=[],
        help="Names (shell patterns, e.g. 'MY_*') of server-side environment variables a kernel "
        "may receive besides KERNEL_*/BF_* from its launch and the kernelspec's own env.",
    ).tag(config=True)
    extra_env = List(
        Unicode(),
        default_value=[],
        help="NAME=VALUE pairs every kernel gets (after the allow-list; they win).",
    ).tag(config=True)

    _generation: int = 0
    _start: RemoteStart | None = None
    _has_process: bool = False
    _exit_code: int | None = None
    _ended: asyncio.Event | None = None
    _follow_task: asyncio.Task[None] | None = None

    # ----- hooks ----------------------------------------------------------------------------------

    @abstractmethod
    async def create_remote(self, start: RemoteStart) -> None: ...

    @abstractmethod
    def watch_start(self) -> AsyncGenerator[Progress | Address, None]: ...

    @abstractmethod
    async def follow_remote(self) -> int: ...

    @abstractmethod
    async def stop_remote(self, *, grace_seconds: int) -> None: ...

    @abstractmethod
    async def release_remote(self) -> None: ...

    @abstractmethod
    def remote_info(self) -> dict[str, Any]: ...

    @abstractmethod
    def restore_remote(self, info: Mapping[str, Any]) -> None: ...

    # ----- launch ---------------------------------------------------------------------------------

    @property
    @override
    def has_process(self) -> bool:
        return self._has_process

    @override
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        self.clear_restart_flag()
        gpu_slice = self.choose_slice(kwargs.get("env"))
        kwargs = await super().pre_launch(**kwargs)
        launch_env: dict[str, str] = kwargs.pop("env")
        kwargs.pop("extra_arguments", None)
        km = self.parent
        session = getattr(km, "session", None)
        key = session.key if session is not None and session.key else secrets.token_hex(16).encode()
        self._generation += 1
        kernelspec_env = self.kernel_spec.env if self.kernel_spec else {}
        self._start = RemoteStart(
            kernel_id=str(self.kernel_id),
            generation=self._generation,
            gpu_slice=gpu_slice,
            user=self.kernel_user(launch_env),
            command=list(self.kernel_spec.argv if self.kernel_spec else []),
            ports=kernel_ports(self.port_base, self._generation),
            key=key,
            signature_scheme=getattr(session, "signature_scheme", "hmac-sha256"),
            environment=kernel_environment(
                launch_env,
                server_env=os.environ,
                kernelspec_names=kernelspec_env,
                allowed_patterns=self.env_allowlist,
                extra=dict(item.partition("=")[::2] for item in self.extra_env),
            ),
            curve_keys=curve_keys(self.parent),
        )
        kwargs["cmd"] = self._start.command
        return kwargs

    @override
    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        start = self._start
        assert start is not None, "pre_launch prepares the start"
        self._exit_code = None
        self._ended = asyncio.Event()
        try:
            await self.create_remote(start)
        except RemoteStartFailure as failure:
            raise self.launch_failed(str(failure)) from None
        self._has_process = True
        try:
            ip = await asyncio.wait_for(self._until_ready(start), self.launch_timeout)
        except BaseException as error:
            reason = self._failure_reason(error)
            if reason is None:  # cancelled, or a bug: clean up and let it propagate as it is
                await self._abandon_start()
                raise
            # Say why first (the user is waiting), then delete what the start created.
            failed = self.launch_failed(reason)
            await self._abandon_start()
            raise failed from None
        self.connection_info = self._connection_info(start, ip)
        self._follow_task = asyncio.create_task(self._follow(), name=f"kernel-{self.kernel_id}")
        return self.connection_info

    def _failure_reason(self, error: BaseException) -> str | None:
        if isinstance(error, RemoteStartFailure):
            return str(error)
        if isinstance(error, asyncio.TimeoutError):
            return f"The kernel did not answer within {self.launch_timeout:g} s of its launch."
        return None

    def _connection_info(self, start: RemoteStart, ip: str) -> KernelConnectionInfo:
        return connection_info(start, ip, getattr(self.parent, "kernel_name", None))

    async def _until_ready(self, start: RemoteStart) -> str:
        signals = self.watch_start()
        try:
            return await until_ready(
                signals,
                start,
                kernel_name=getattr(self.parent, "kernel_name", None),
                publish=self.publish,
            )
        finally:
            await signals.aclose()

    async def _abandon_start(self) -> None:
        """Delete what a failed start created (shielded: a cancelled start still cleans up)."""
        try:
            await asyncio.shield(self.release_remote())
        finally:
            self._has_process = False
            self._mark_ended(None)

    async def _follow(self) -> None:
        try:
            code = await self.follow_remote()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("kernel %s: lost track of the remote kernel", self.kernel_id)
            code = -1
        self._mark_ended(code)

    def _mark_ended(self, code: int | None) -> None:
        self._exit_code = code if code is not None else -1
        if self._ended is None:
            self._ended = asyncio.Event()
        self._ended.set()

    # ----- the process protocol -------------------------------------------------------------------

    @override
    async def poll(self) -> int | None:
        if not self._has_process:
            return 0
        return self._exit_code if self._ended is not None and self._ended.is_set() else None

    @override
    async def wait(self) -> int | None:
        if self._has_process and self._ended is not None:
            await self._ended.wait()
        self._has_process = False
        return self._exit_code

    @override
    async def send_signal(self, signum: int) -> None:
        if not self._has_process or signum == 0:
            return
        if signum == signal.SIGINT:
            if not await request_interrupt(self.connection_info):
                self.log.warning("kernel %s did not acknowledge the interrupt", self.kernel_id)
        elif signum == signal.SIGTERM:
            await self.stop_remote(grace_seconds=self.termination_grace())
        elif signum == signal.SIGKILL:
            await self.stop_remote(grace_seconds=_KILL_GRACE_SECONDS)
        else:
            self.log.warning(
                "kernel %s: signal %d cannot reach a remote kernel; only SIGINT (as an interrupt "
                "message), SIGTERM and SIGKILL are supported",
                self.kernel_id,
                signum,
            )

    @override
    async def kill(self, restart: bool = False) -> None:
        self.take_restart_flag(restart)
        if self._has_process:
            await self.stop_remote(grace_seconds=_KILL_GRACE_SECONDS)

    @override
    async def terminate(self, restart: bool = False) -> None:
        self.take_restart_flag(restart)
        if self._has_process:
            await self.stop_remote(grace_seconds=self.termination_grace())

    @override
    async def cleanup(self, restart: bool = False) -> None:
        restart = self.take_restart_flag(restart)
        if self._follow_task is not None:
            self._follow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow_task
            self._follow_task = None
        await self.release_remote()
        self._has_process = False
        self.log.info(
            "kernel %s: resources released%s", self.kernel_id, " for a restart" if restart else ""
        )
        if not restart:
            self.gpu_slice = None
        self.clear_restart_flag()

    def termination_grace(self) -> int:
        """Seconds a stopping kernel gets before it is killed (the backend's setting)."""
        return 10

    @override
    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return max(recommended, float(self.termination_grace()))

    @override
    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, self.launch_timeout)

    # ----- persistence ----------------------------------------------------------------------------

    @override
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        connection = dict(info.get("connection_info") or {})
        if isinstance(connection.get("key"), bytes):
            connection["key"] = connection["key"].decode()  # JSON-safe, like a connection file
        info.update(connection_info=connection, generation=self._generation, **self.slice_info())
        info["remote"] = self.remote_info()
        return info

    @override
    async def load_provisioner_info(self, provisioner_info: dict) -> None:  # type: ignore[type-arg]
        await super().load_provisioner_info(provisioner_info)
        connection: dict[str, Any] = dict(self.connection_info)
        if isinstance(connection.get("key"), str):
            connection["key"] = connection["key"].encode()
        self.connection_info = cast("KernelConnectionInfo", connection)
        self._generation = int(provisioner_info.get("generation", 1))
        self.restore_slice_info(provisioner_info)
        self.restore_remote(provisioner_info.get("remote") or {})
        self._has_process = True
        self._exit_code = None
        self._ended = asyncio.Event()
        self._follow_task = asyncio.create_task(self._follow(), name=f"kernel-{self.kernel_id}")
