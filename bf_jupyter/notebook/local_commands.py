"""The ``%bitfusion`` subcommands that use the Bitfusion client on this machine: ``run``, the
``%%bitfusion`` cell, ``status`` (its local half) and ``smi``.

Commands run on a slice only through the client adapter (``BitfusionClient.run_argv``); the client
releases the slice when the command ends. A command's metric records become live curves; the
widget's Stop button creates the ``$BF_STOP_FILE`` the Keras callback watches, so training ends
cleanly and the program goes on (to save its model, say).
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from bf_jupyter.bitfusion.client import BitfusionClientError, resolve_client
from bf_jupyter.bitfusion.run_output import read_run_line
from bf_jupyter.contract import ENV_SLICE
from bf_jupyter.notebook.local_runner import run_streaming
from bf_jupyter.notebook.magic_args import MagicError
from bf_jupyter.notebook.metric_records import STOP_FILE_ENV
from bf_jupyter.notebook.output_stream import CurveFeed, OutputRouter
from bf_jupyter.slice import GpuSlice, SliceError

__all__ = [
    "child_environment",
    "kernel_slice_line",
    "pool_line",
    "run_cell",
    "run_on_slice",
    "show_smi",
]


def run_on_slice(
    subcommand: str,
    gpu_slice: GpuSlice,
    command: Sequence[str],
    *,
    wait: float | None = None,
    title: str | None = None,
    grace: float = 5.0,
) -> None:
    """Run ``command`` on ``gpu_slice``, streaming its output and curves into the cell.

    Raises ``MagicError`` (one line) when the client is missing, the slice cannot be had, the
    command fails, or the user interrupts it (after stopping it).
    """
    try:
        argv = resolve_client().run_argv(gpu_slice, command, wait_seconds=wait)
    except BitfusionClientError as error:
        raise MagicError(subcommand, str(error)) from None
    shown = shlex.join(command)
    with tempfile.TemporaryDirectory(prefix="bf-run-") as scratch:
        stop_file = Path(scratch) / "stop"
        feed = CurveFeed(
            title=title or f"{shown} on {gpu_slice}",
            stop=stop_file.touch,
            stop_hint="Stop asks the training loop to stop after the current batch",
        )
        watch = _ClientWatch(OutputRouter(feed))
        try:
            result = run_streaming(
                argv,
                on_line=watch.line,
                on_idle=watch.router.idle,
                env=child_environment(gpu_slice, stop_file),
                grace=grace,
            )
        except OSError as error:
            raise MagicError(
                subcommand, f"cannot start the Bitfusion client {argv[0]}: {error.strerror}"
            ) from None
    if result.interrupted:
        feed.close(stopped=True)
        raise MagicError(
            subcommand, f"interrupted: stopped {shown}; the {gpu_slice} slice is released"
        )
    feed.close(failed=result.exit_code != 0)
    if result.exit_code != 0 and not watch.locked:
        reason = f": {watch.last_error}" if watch.last_error else ""
        raise MagicError(
            subcommand,
            f"the Bitfusion client could not run the command on {gpu_slice} (exit code {result.exit_code}){reason}",
        )
    if result.exit_code != 0:
        raise MagicError(subcommand, f"{shown} exited with code {result.exit_code}")


def run_cell(
    gpu_slice: GpuSlice, body: str, *, wait: float | None = None, grace: float = 5.0
) -> None:
    """Run a cell's Python code as a new process on ``gpu_slice`` (see ``run_on_slice``)."""
    with tempfile.TemporaryDirectory(prefix="bf-cell-") as scratch:
        script = Path(scratch) / "cell.py"
        script.write_text(body, encoding="utf-8")
        run_on_slice(
            "cell",
            gpu_slice,
            [sys.executable, "-u", str(script)],
            wait=wait,
            title=f"%%bitfusion cell on {gpu_slice}",
            grace=grace,
        )


def child_environment(
    gpu_slice: GpuSlice, stop_file: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The kernel's environment for a command on a slice: unbuffered output (records arrive as
    they are written), the stop file, the slice, and no inline plotting backend (not a kernel)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    env[STOP_FILE_ENV] = str(stop_file)
    env[ENV_SLICE] = gpu_slice.to_text()
    if "inline" in env.get("MPLBACKEND", ""):
        del env["MPLBACKEND"]
    return env


class _ClientWatch:
    """Remembers what the client said: whether it locked GPUs, and its last error line."""

    def __init__(self, router: OutputRouter) -> None:
        self.router = router
        self.locked = False
        self.last_error = ""

    def line(self, stream: str, text: str) -> None:
        if not self.locked:
            if read_run_line(text).locked:
                self.locked = True
            elif stream == "stderr" and text.strip():
                self.last_error = text.strip()
        self.router.line(stream, text)


# ----- status and smi ----------------------------------------------------------------------------


def kernel_slice_line(env: Mapping[str, str] | None = None) -> str:
    """This kernel's slice, from ``$BF_SLICE`` (set by our provisioners, local and Kubernetes)."""
    env = os.environ if env is None else env
    text = env.get(ENV_SLICE) or ""
    if not text:
        return "none (this kernel was not started on a GPU slice)"
    try:
        gpu_slice = GpuSlice.parse(text)
    except SliceError as error:
        return f"{text} (unreadable: {error})"
    return f"{gpu_slice} ({gpu_slice.describe()})"


def pool_line() -> tuple[str, str]:
    """(client, pool) lines for ``status``; failures are described, never raised."""
    try:
        client = resolve_client()
    except BitfusionClientError as error:
        return f"unusable ({error})", "unknown"
    try:
        pool = client.list_gpus(timeout=10)
    except BitfusionClientError as error:
        return client.describe(), f"unavailable ({error})"
    gpus = pool.total_gpus
    free = sum(g.memory_free_mib for s in pool.servers for g in s.gpus)
    total = sum(g.memory_total_mib for s in pool.servers for g in s.gpus)
    leases = sum(len(s.leases) for s in pool.servers)
    servers = len(pool.servers)
    text = (
        f"{servers} server{'s' if servers != 1 else ''}, {gpus} GPU{'s' if gpus != 1 else ''}, "
        f"{free} of {total} MiB free"
    )
    if leases:
        text += f", {leases} lease{'s' if leases != 1 else ''}"
    if pool.simulated:
        text += " (simulated)"
    return client.describe(), text


def show_smi() -> None:
    """Print the client's ``smi`` report under a line naming the client."""
    try:
        client = resolve_client()
        report = client.smi(timeout=15)
    except BitfusionClientError as error:
        raise MagicError("smi", str(error)) from None
    print(f"{client.describe()}:\n")
    print(report.rstrip("\n"))
