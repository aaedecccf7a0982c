"""Who holds a lease, whether that process still lives, and a child that dies with its parent.

A lease records its holder's pid AND start time (``/proc/PID/stat`` field 22, clock ticks since
boot): a pid alone can be reused by an unrelated process after the holder was SIGKILLed, which would
keep a dead lease forever. Zombies count as dead: a SIGKILLed holder whose parent has not reaped it
yet holds nothing.

The simulator never signals a process whose identity it cannot confirm: leftovers of a command
are recognised by their group, start time and the ``BF_SIM_HOLDER`` mark in their environment, and
signalled through a pidfd (see ``kill_process_group``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HOLDER_ENV",
    "ProcessIdentity",
    "child_preexec",
    "current_process",
    "find_program",
    "holder_marker",
    "identify",
    "is_alive",
    "kill_process_group",
]

_PROC = Path("/proc")
_PR_SET_PDEATHSIG = 1
_START_FIELD = 19  # starttime is field 22 of /proc/PID/stat, the 20th after "pid (comm)"
_PGRP_FIELD = 2  # pgrp is field 5
HOLDER_ENV = "BF_SIM_HOLDER"


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as it can be recognised later: pid, start time (None where /proc is missing)."""

    pid: int
    start: int | None


def current_process() -> ProcessIdentity:
    return identify(os.getpid())


def identify(pid: int) -> ProcessIdentity:
    """``pid`` with its start time, as far as /proc tells (None where it does not)."""
    stat = _read_stat(pid)
    return ProcessIdentity(pid, stat[1] if stat else None)


def holder_marker(holder: ProcessIdentity | None) -> str | None:
    """The value of ``HOLDER_ENV`` in the environment of a command run on ``holder``'s lease:
    what proves, later, that a process descends from that command. None without a start time."""
    if holder is None or holder.start is None:
        return None
    return f"{holder.pid}-{holder.start}"


def kill_process_group(leader: ProcessIdentity, marker: str | None) -> int:
    """SIGKILL what is left of the process group that ``leader`` led; returns how many processes.

    Only processes whose identity is confirmed are signalled: in that group, started no earlier
    than the leader, and carrying ``HOLDER_ENV=marker`` in their environment (inherited from the
    command). Each is signalled through a pidfd opened before it was checked, so a pid that is
    reused between the check and the signal is never hit. Where that cannot be confirmed (no
    start time, no marker, no /proc or no pidfd: not Linux) nothing is signalled.
    """
    if marker is None or leader.start is None or not _can_confirm():
        return 0
    expected = f"{HOLDER_ENV}={marker}".encode()
    killed = 0
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit():
            continue
        stat = _read_stat(int(entry.name))
        if stat is None or stat[2] != leader.pid or stat[1] < leader.start:
            continue  # the common case: another group, read without opening anything
        killed += _kill_confirmed(int(entry.name), leader, expected)
    return killed


def _kill_confirmed(pid: int, leader: ProcessIdentity, expected: bytes) -> int:
    """SIGKILL ``pid`` through a pidfd when, checked after the pidfd was opened, it is still in
    ``leader``'s group and its environment holds ``expected``; 1 if signalled, else 0."""
    try:
        handle = os.pidfd_open(pid)
    except OSError:
        return 0
    try:
        stat = _read_stat(pid)
        if stat is None or stat[2] != leader.pid or leader.start is None or stat[1] < leader.start:
            return 0
        environ = (_PROC / str(pid) / "environ").read_bytes().split(b"\0")
        if expected not in environ:
            return 0  # same group number, but not a descendant of our command: not ours
        signal.pidfd_send_signal(handle, signal.SIGKILL)
        return 1
    except OSError:  # gone meanwhile, or not ours to read or signal
        return 0
    finally:
        os.close(handle)


def is_alive(identity: ProcessIdentity) -> bool:
    """True while the very process ``identity`` names runs (not a zombie, not a reused pid)."""
    if not _has_proc():
        try:
            os.kill(identity.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stat = _read_stat(identity.pid)
    if stat is None or stat[0] in {"Z", "X", "x"}:
        return False
    return identity.start is None or stat[1] == identity.start


def child_preexec(*, new_group: bool, record: Path | None = None) -> Callable[[], None]:
    """The ``preexec_fn`` for a command run on a lease: in its own process group when
    ``new_group`` (so signals can be forwarded to everything it starts), and killed by the kernel
    when this process dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``), so that it never runs on
    a slice whose lease is gone. With ``record``, the child writes ``PID START`` there before it
    executes: written by the parent after the start, a SIGKILL could come first."""
    parent = os.getpid()
    prctl = _load_prctl()

    def preexec() -> None:
        if new_group:
            os.setpgid(0, 0)
        if record is not None:
            me = current_process()
            with contextlib.suppress(OSError):  # best effort: only reaping after a SIGKILL uses it
                record.write_text(f"{me.pid} {me.start if me.start is not None else '-'}")
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before the death signal was armed
                os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def find_program(name: str, search_path: str | None = None) -> str | None:
    """What ``execvp`` would run for ``name``: the first executable file in ``search_path``
    (default ``$PATH``), or the path itself when ``name`` contains a slash. ``shutil.which`` does
    the same but imports bz2 and lzma, a noticeable share of ``bitfusion-sim``'s start-up."""
    if os.sep in name:
        return name if _is_executable_file(name) else None
    search = os.environ.get("PATH", os.defpath) if search_path is None else search_path
    for folder in search.split(os.pathsep):
        candidate = os.path.join(folder or os.curdir, name)  # noqa: PTH118 (no pathlib per PATH entry)
        if _is_executable_file(candidate):
            return candidate
    return None


def _is_executable_file(path: str) -> bool:
    return os.access(path, os.X_OK) and not os.path.isdir(path)  # noqa: PTH112


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


def _has_proc() -> bool:
    return (_PROC / "self" / "stat").exists()


def _can_confirm() -> bool:
    return _has_proc() and hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


def _read_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, start time, process group) from /proc/PID/stat, or None when the process is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces or ')'
    if len(fields) <= _START_FIELD or not fields[_START_FIELD].isdigit():
        return None
    if not fields[_PGRP_FIELD].isdigit():
        return None
    return fields[0], int(fields[_START_FIELD]), int(fields[_PGRP_FIELD])
