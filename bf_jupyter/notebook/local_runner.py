"""Run a command (already wrapped by the Bitfusion client) and stream its output as it comes.

The child runs in its own session so that the kernel's interrupt, which jupyter_client sends to the
kernel's whole process group, reaches only the kernel: the runner then stops the child itself, in
steps — SIGINT (what Ctrl-C means), SIGTERM after ``grace`` seconds, SIGKILL after another
``grace`` — to the child's whole process group. The Bitfusion client (and ``bitfusion-sim``)
releases the slice when its command ends. Whatever is left in the group when the client exits is
killed, so nothing keeps running on a released slice.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["RunResult", "run_streaming", "stop_process_group"]

LineHandler = Callable[[str, str], None]  # (stream name "stdout"/"stderr", line without newline)
_EOF = None
_LINGER = 1.0  # seconds the pipes may stay open after the command exited


@dataclass(frozen=True)
class RunResult:
    """How the command ended: its exit code (128 + N when killed by signal N), and whether the
    user interrupted it."""

    exit_code: int
    interrupted: bool


def run_streaming(
    argv: Sequence[str],
    *,
    on_line: LineHandler,
    on_idle: Callable[[], None] = lambda: None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    grace: float = 5.0,
    idle_interval: float = 0.1,
) -> RunResult:
    """Run ``argv``, calling ``on_line`` for each output line as it comes and ``on_idle`` at least
    every ``idle_interval`` seconds; a KeyboardInterrupt stops the command (see the module).

    Raises ``FileNotFoundError``/``PermissionError`` when the command cannot start.
    """
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=None if env is None else dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    readers = [
        _start_reader(process.stdout, "stdout", lines),
        _start_reader(process.stderr, "stderr", lines),
    ]
    interrupted = False
    try:
        try:
            _pump(
                process,
                lines,
                len(readers),
                on_line=on_line,
                on_idle=on_idle,
                idle_interval=idle_interval,
            )
            process.wait()
        except KeyboardInterrupt:
            interrupted = True
            stop_process_group(process, grace)
            _drain(lines, on_line)
    finally:
        if process.poll() is None:
            stop_process_group(process, 0)
        _kill_leftovers(process)
        for reader in readers:
            reader.join(timeout=2)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    code = process.returncode
    return RunResult(128 - code if code < 0 else code, interrupted)


def stop_process_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGINT, then SIGTERM after ``grace`` s, then SIGKILL after another ``grace`` s, to the
    process's group; a second KeyboardInterrupt while waiting skips to SIGKILL."""
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            if grace <= 0:
                break
            _signal_group(process, signum)
            try:
                process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        pass
    _signal_group(process, signal.SIGKILL)
    process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _kill_leftovers(process: subprocess.Popen[bytes]) -> None:
    """Processes the command left in its group (its session) after it exited."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _start_reader(
    pipe: IO[bytes] | None, name: str, lines: queue.Queue[tuple[str, str | None]]
) -> threading.Thread:
    def read() -> None:
        try:
            if pipe is not None:
                for raw in iter(pipe.readline, b""):
                    lines.put((name, raw.decode("utf-8", "replace").rstrip("\r\n")))
        except (OSError, ValueError):
            pass  # the pipe was closed under us: the run is over
        finally:
            lines.put((name, _EOF))

    thread = threading.Thread(target=read, name=f"bf-run-{name}", daemon=True)
    thread.start()
    return thread


def _pump(
    process: subprocess.Popen[bytes],
    lines: queue.Queue[tuple[str, str | None]],
    open_streams: int,
    *,
    on_line: LineHandler,
    on_idle: Callable[[], None],
    idle_interval: float,
) -> None:
    """Deliver lines until both pipes close. Processes that outlive the command keep its pipes
    open: once it has exited, they get ``_LINGER`` seconds, then are killed, then ignored."""
    quiet_since_exit = 0.0
    while open_streams:
        try:
            name, line = lines.get(timeout=idle_interval)
        except queue.Empty:
            on_idle()
            if process.poll() is not None:
                quiet_since_exit += idle_interval
                if quiet_since_exit >= _LINGER:
                    _kill_leftovers(process)
                if quiet_since_exit >= 2 * _LINGER:
                    return
            continue
        if line is _EOF:
            open_streams -= 1
        else:
            on_line(name, line)
            if lines.empty():
                on_idle()


def _drain(lines: queue.Queue[tuple[str, str | None]], on_line: LineHandler) -> None:
    while True:
        try:
            name, line = lines.get_nowait()
        except queue.Empty:
            return
        if line is not _EOF:
            on_line(name, line)
