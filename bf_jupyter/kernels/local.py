"""``bitfusion-local``: a kernel on this machine, started as ``bitfusion run <slice> -- <kernel argv>``.

The Bitfusion client (real, or ``bitfusion-sim``) holds the slice for exactly the life of its child,
the kernel. So the provisioner never kills the client first: interrupt, terminate and kill go to the
kernel's processes (the client's descendants), the client sees its child end, releases the lease and
exits; only a client that has not exited ``release_timeout`` seconds later is killed. A kernel that
is SIGKILLed from elsewhere releases its lease the same way, and so does one whose server is killed
(the client is started through ``exit_with_server``).

Start-up waits for the kernel's first ``kernel_info_reply``, relaying progress (created, the client's
"Locked N GPUs" line, ready) and failing with the client's own last line (e.g. the pool cannot serve
the slice) as soon as the client exits.

Per-launch slice: ``start_kernel(env={"BF_SLICE": "1x50%"})``; see ``sliced_kernel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Float
from typing_extensions import override

from bf_jupyter.bitfusion.client import BitfusionClientError, resolve_client
from bf_jupyter.bitfusion.run_output import failure_reason, read_run_line
from bf_jupyter.contract import ENV_SLICE
from bf_jupyter.kernels.exit_with_server import guarded_argv
from bf_jupyter.kernels.kernel_channels import await_kernel_info
from bf_jupyter.kernels.sliced_kernel import SlicedKernelMixin

if TYPE_CHECKING:
    from jupyter_client.connect import KernelConnectionInfo

__all__ = ["BitfusionLocalProvisioner"]

_KEPT_LINES = 40
_EOF = None


class BitfusionLocalProvisioner(SlicedKernelMixin, LocalProvisioner):  # type: ignore[metaclass]
    """A local kernel wrapped in ``bitfusion run`` on the launch's GPU slice."""

    release_timeout = Float(
        10.0,
        help="Seconds the Bitfusion client gets to release the slice after its kernel ended before "
        "it is killed too (a killed client may leave the lease held on a real Bitfusion server).",
    ).tag(config=True)

    _stderr_lines: asyncio.Queue[str | None] | None = None
    _client_name: str = "bitfusion"

    @override
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        self.clear_restart_flag()
        gpu_slice = self.choose_slice(kwargs.get("env"))
        await self.admit_slice(gpu_slice)  # the server's local quota, however the start was asked
        try:
            kwargs = await super().pre_launch(**kwargs)
            env: dict[str, str] = kwargs["env"]
            try:
                client = resolve_client(env)
                # Through exit_with_server: the client must not outlive a server that is killed.
                kwargs["cmd"] = guarded_argv(client.run_argv(gpu_slice, kwargs["cmd"]))
            except BitfusionClientError as error:
                raise self.launch_failed(f"No usable Bitfusion client: {error}.") from None
        except BaseException:
            self.release_slice()
            raise
        env[ENV_SLICE] = gpu_slice.to_text()
        self._client_name = client.name
        return kwargs

    @override
    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        assert self.gpu_slice is not None, "pre_launch chooses the slice"
        kwargs["stderr"] = subprocess.PIPE
        try:
            connection_info = await super().launch_kernel(cmd, **kwargs)
        except BaseException:
            self.release_slice()
            raise
        self.publish(
            "created",
            f"Started {self._client_name} for {self.gpu_slice.describe()} (pid {self.pid})",
        )
        self._stderr_lines = asyncio.Queue()
        self._start_stderr_relay()
        try:
            await asyncio.wait_for(self._until_ready(connection_info), self.launch_timeout)
        except asyncio.TimeoutError:
            await self._stop_after_failed_start()
            self.release_slice()
            raise self.launch_failed(
                f"The kernel did not answer within {self.launch_timeout:g} s of its launch."
            ) from None
        except BaseException:
            await self._stop_after_failed_start()
            self.release_slice()
            raise
        finally:
            self._stderr_lines = None
        return connection_info

    async def _until_ready(self, connection_info: KernelConnectionInfo) -> None:
        """Relay progress until the kernel answers; raise when the client exits first."""
        assert self._stderr_lines is not None
        probe = asyncio.ensure_future(await_kernel_info(connection_info))
        recent: deque[str] = deque(maxlen=_KEPT_LINES)
        try:
            while True:
                line_task = asyncio.ensure_future(self._stderr_lines.get())
                done, _ = await asyncio.wait(
                    {probe, line_task}, return_when=asyncio.FIRST_COMPLETED
                )
                if probe in done:
                    line_task.cancel()
                    probe.result()
                    self.publish("ready", "Kernel ready")
                    return
                line = line_task.result()
                if line is _EOF:
                    code = await self._client_exit_code()
                    reason = failure_reason(recent, default=f"exit code {code}")
                    raise self.launch_failed(
                        f"{self._client_name} exited (code {code}) before the kernel was ready: {reason}"
                    )
                recent.append(line)
                run_line = read_run_line(line)
                if run_line.locked:
                    self.publish("locked", run_line.summary())
        finally:
            probe.cancel()

    async def _client_exit_code(self) -> int | None:
        process = self.process
        if process is None:
            return None
        try:
            return await asyncio.to_thread(process.wait, self.release_timeout)
        except subprocess.TimeoutExpired:
            return None

    def _start_stderr_relay(self) -> None:
        """Read the client's (and kernel's) stderr in a daemon thread: every line goes on to the
        server's stderr, as a plain local kernel's would; during start-up also to the queue."""
        process = self.process
        assert process is not None and process.stderr is not None
        loop = asyncio.get_running_loop()
        stream = process.stderr
        # The thread owns the pipe: LocalProvisioner.wait() would close it under the reader, and
        # block on it while the kernel still holds the other end.
        process.stderr = None

        def offer(line: str | None) -> None:
            if self._stderr_lines is not None:
                self._stderr_lines.put_nowait(line)

        def relay() -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace")
                sys.stderr.write(line)
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
                    loop.call_soon_threadsafe(offer, line.rstrip("\n"))
            stream.close()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(offer, _EOF)

        threading.Thread(target=relay, name=f"kernel-{self.kernel_id}-stderr", daemon=True).start()

    async def _stop_after_failed_start(self) -> None:
        await self._end_kernel(signal.SIGKILL)
        if self.process is not None:
            await self.wait()

    # ----- ending the kernel, never the client first ----------------------------------------------

    def _kernel_pids(self) -> list[int]:
        """The client's descendants: the kernel and whatever it started (same process group)."""
        import psutil

        if self.pid is None:
            return []
        try:
            return [child.pid for child in psutil.Process(self.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def _signal_kernel(self, signum: int) -> bool:
        """Signal the kernel's processes, or the client while it has not started the kernel yet.
        False when nothing was left to signal."""
        targets = self._kernel_pids() or ([self.pid] if self.pid is not None else [])
        delivered = False
        for pid in targets:
            try:
                os.kill(pid, signum)
                delivered = True
            except ProcessLookupError:
                continue
        return delivered

    async def _end_kernel(self, signum: int) -> None:
        """Signal the kernel, give the client ``release_timeout`` to release and exit, then kill
        the whole process group."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal_kernel(signum)
        if await self._client_exit_code() is None and self.pgid:
            self.log.warning(
                "kernel %s: the Bitfusion client did not exit %g s after its kernel; killing it",
                self.kernel_id,
                self.release_timeout,
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)

    @override
    async def send_signal(self, signum: int) -> None:
        if self.process is not None and signum != 0:
            self._signal_kernel(signum)

    @override
    async def kill(self, restart: bool = False) -> None:
        self.take_restart_flag(restart)
        await self._end_kernel(signal.SIGKILL)

    @override
    async def terminate(self, restart: bool = False) -> None:
        self.take_restart_flag(restart)
        if self.process is not None:
            self._signal_kernel(signal.SIGTERM)

    @override
    async def cleanup(self, restart: bool = False) -> None:
        restart = self.take_restart_flag(restart)
        await super().cleanup(restart=restart)
        if not restart:
            self.gpu_slice = None
            self.release_slice()
        self.clear_restart_flag()

    @override
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update(self.slice_info())
        return info

    @override
    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.restore_slice_info(provisioner_info)
