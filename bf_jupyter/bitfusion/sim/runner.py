"""``bitfusion-sim run``: lease a slice, run the command on it as a child, release on every exit.

The child gets the lease in its environment (``CUDA_VISIBLE_DEVICES``, memory hints for the
frameworks, ``BF_SIM_LEASE_ID``/``BF_SIM_SLICE`` so it can prove which slice it runs on). Signals:

* usually the child runs in its own process group and INT, TERM, HUP, QUIT, USR1, USR2 sent to
  ``bitfusion-sim`` are forwarded to that group (once each: a kernel interrupt stays one SIGINT);
  what the command leaves in its group when it exits is killed, so nothing keeps using a released
  slice;
* when started in the foreground of a terminal, the child stays in the terminal's process group so
  that job control and Ctrl-C work as for any command; the terminal's INT and QUIT reach it
  directly, so only the other signals are forwarded (like ``system(3)``).

The child is killed by the kernel if ``bitfusion-sim`` dies (``PR_SET_PDEATHSIG``); the lease of a
SIGKILLed ``bitfusion-sim`` is reaped by the next pool access. Exit code: the child's, or 128 +
signal when it died of one; 127/126 when the command is missing/not executable.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from bf_jupyter.bitfusion.sim.config import load_pool, state_home
from bf_jupyter.bitfusion.sim.errors import (
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    CommandNotStarted,
)
from bf_jupyter.bitfusion.sim.leasing import (
    Interrupted,
    acquire,
    info,
    locked_message,
    requesting_message,
)
from bf_jupyter.bitfusion.sim.processes import (
    HOLDER_ENV,
    child_preexec,
    current_process,
    find_program,
    holder_marker,
    identify,
    kill_process_group,
)
from bf_jupyter.bitfusion.sim.store import Store
from bf_jupyter.gpucaps import cap_environment

if TYPE_CHECKING:
    from bf_jupyter.bitfusion.sim.placement import Placement, Pool
    from bf_jupyter.bitfusion.sim.store import Lease
    from bf_jupyter.slice import GpuSlice

__all__ = ["FORWARDED_SIGNALS", "lease_environment", "run_on_slice"]

FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_TERMINAL_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT})


def run_on_slice(
    gpu_slice: GpuSlice, command: Sequence[str], *, wait_s: float | None, env: Mapping[str, str]
) -> int:
    """Run ``command`` on ``gpu_slice`` and return the exit code ``bitfusion-sim`` ends with.

    Raises ``SimError``/``CannotServe``/``UsageError`` before the command starts; once it started,
    its exit code is returned and the lease is released whatever happens.
    """
    _check_runnable(command[0], env)
    home = state_home(env)
    pool = load_pool(env, home)
    relay = _SignalRelay(foreground=_in_terminal_foreground())
    relay.install()
    try:
        store = Store.open(home)
        try:
            return _lease_and_run(
                store, pool, gpu_slice, command, wait_s=wait_s, env=env, relay=relay
            )
        finally:
            store.close()
    finally:
        relay.restore()


def _lease_and_run(
    store: Store,
    pool: Pool,
    gpu_slice: GpuSlice,
    command: Sequence[str],
    *,
    wait_s: float | None,
    env: Mapping[str, str],
    relay: _SignalRelay,
) -> int:
    try:
        lease, placement = acquire(
            store,
            pool,
            gpu_slice,
            wait_s=wait_s,
            kind="run",
            holder=current_process(),
            holder_name=Path(command[0]).name,
            command=shlex.join(command),
            pending_signal=relay.pending,
        )
    except Interrupted as stop:
        return 128 + stop.signum
    try:
        return _run_leased(
            store,
            lease,
            placement,
            pool=pool,
            gpu_slice=gpu_slice,
            command=command,
            env=env,
            relay=relay,
        )
    finally:
        # Released before anything is printed: a closed stderr must not keep the lease.
        config = store.lease_file(lease.lease_id)
        store.release(lease.lease_id)
        info(f"Releasing GPUs from config file '{config}'")
        info(f"Released GPUs on 1 servers and removed generated config file '{config}'")


def lease_environment(
    base: Mapping[str, str], lease: Lease, placement: Placement, pool: Pool, gpu_slice: GpuSlice
) -> dict[str, str]:
    """The command's environment: ``base`` plus the lease. Virtual GPUs get an empty
    ``CUDA_VISIBLE_DEVICES`` (no real GPU may be used in their name)."""
    indexes = ",".join(str(g.index) for g in placement.gpus)
    fraction = min(
        mib / gpu.memory_mib for gpu, mib in zip(placement.gpus, placement.memory_mib, strict=True)
    )
    env = dict(base)
    env.update(
        {
            "CUDA_VISIBLE_DEVICES": "" if pool.simulated else indexes,
            "BF_GPU_MEMORY_MIB": str(min(placement.memory_mib)),
            # Rounded down so that a framework honouring it stays inside the slice.
            "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{math.floor(fraction * 1000) / 1000:g}",
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",
            "BF_SIM_LEASE_ID": str(lease.lease_id),
            "BF_SIM_SLICE": gpu_slice.to_text(),
            "BF_SIM_SERVER": placement.server.address,
            "BF_SIM_LEASED_GPUS": indexes,
        }
    )
    marker = holder_marker(lease.holder)
    if marker is not None:  # what lets leftovers of the command be recognised, and only them
        env[HOLDER_ENV] = marker
    if not pool.simulated:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's indexes then match nvidia-smi's
        if fraction < 1:  # a share of a real GPU: nothing else holds the frameworks to it
            env.update(
                cap_environment(env, fraction=fraction, per_gpu_mib=min(placement.memory_mib))
            )
    return env


def _run_leased(
    store: Store,
    lease: Lease,
    placement: Placement,
    *,
    pool: Pool,
    gpu_slice: GpuSlice,
    command: Sequence[str],
    env: Mapping[str, str],
    relay: _SignalRelay,
) -> int:
    info(requesting_message(placement, simulated=pool.simulated))
    info(locked_message(lease, gpu_slice, str(store.lease_file(lease.lease_id))))
    info(
        f"Running client command '{shlex.join(command)}' on {len(lease.gpus)} GPUs, "
        f"with the following servers: {placement.server.address}"
    )
    signum = relay.pending()
    if signum is not None:
        return 128 + signum
    preexec = child_preexec(
        new_group=not relay.foreground,
        record=None if relay.foreground else store.command_file(lease.lease_id),
    )
    try:
        child = subprocess.Popen(
            list(command),
            env=lease_environment(env, lease, placement, pool, gpu_slice),
            preexec_fn=preexec,  # noqa: PLW1509 (bitfusion-sim runs no threads)
            close_fds=True,
        )
    except FileNotFoundError:
        raise CommandNotStarted(
            f"command {command[0]!r} not found: give a program on PATH or its path",
            exit_code=EXIT_NOT_FOUND,
        ) from None
    except OSError as error:  # not executable, bad format, too many arguments ...
        raise CommandNotStarted(
            f"command {command[0]!r} cannot be run ({error.strerror or error})",
            exit_code=EXIT_NOT_EXECUTABLE,
        ) from None
    leader = identify(child.pid)  # not reaped yet: the pid is still the child's
    relay.attach(child.pid)
    _wait_unreaped(child.pid)
    relay.detach()  # before the pid is reaped, so no signal is forwarded to a reused pid
    code = child.wait()
    if not relay.foreground:
        kill_process_group(leader, holder_marker(lease.holder))
    return 128 - code if code < 0 else code


def _wait_unreaped(pid: int) -> None:
    """Wait until the child ``pid`` has exited, leaving it a zombie (so its pid and process group
    number stay ours until ``wait`` reaps it)."""
    with contextlib.suppress(ChildProcessError, AttributeError):
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def _check_runnable(program: str, env: Mapping[str, str]) -> None:
    """Refuse a command that cannot start before any lease is taken (exit 127 or 126, as shells)."""
    search = env.get("PATH", os.defpath)
    if find_program(program, search) is not None:
        return
    exists = (
        Path(program).exists()
        if os.sep in program
        else any(Path(folder or os.curdir, program).exists() for folder in search.split(os.pathsep))
    )
    if exists:
        raise CommandNotStarted(
            f"command {program!r} is not executable", exit_code=EXIT_NOT_EXECUTABLE
        )
    raise CommandNotStarted(
        f"command {program!r} not found: give a program on PATH or its path",
        exit_code=EXIT_NOT_FOUND,
    )


def _in_terminal_foreground() -> bool:
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


class _SignalRelay:
    """Signal handlers for the life of a run: record the first signal while no child runs (the
    run is abandoned), forward each one to the child once it runs."""

    def __init__(self, *, foreground: bool) -> None:
        self.foreground = foreground
        self._child: int | None = None
        self._first: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for signum in FORWARDED_SIGNALS:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue  # ignored by whoever started us (nohup, a background job): the child inherits that
            self._previous[signum] = previous
            signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def pending(self) -> int | None:
        return self._first

    def attach(self, child: int) -> None:
        """Forward from now on; a signal that came while the command was being started never
        reached it (not even from the terminal), so it is passed on now."""
        self._child = child
        missed = self._first
        if missed is not None:
            self._send(missed, child)

    def detach(self) -> None:
        self._child = None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        child = self._child
        if child is None:
            if self._first is None:
                self._first = signum
            return
        if self.foreground and signum in _TERMINAL_SIGNALS:
            return  # the terminal delivered it to the child already
        self._send(signum, child)

    def _send(self, signum: int, child: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the child is exiting: wait() collects it
            if self.foreground:
                os.kill(child, signum)
            else:
                os.killpg(child, signum)
