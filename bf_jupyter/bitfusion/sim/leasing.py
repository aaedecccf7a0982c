"""Taking and giving back leases the way the real client reports it (``[INFO]`` lines), waiting for
capacity, and the ``request_gpus``/``release_gpus`` commands.

``--wait SECONDS`` polls the state database with a short exponential backoff (20 ms doubling to
250 ms) until the slice fits or the time is up. Polling SQLite is the simplest event source that
works across unrelated processes here; a released lease is noticed within 250 ms.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TextIO

from bf_jupyter.bitfusion.sim.errors import CannotServe, SimError, UsageError
from bf_jupyter.bitfusion.sim.store import rfc3339_now
from bf_jupyter.version import __version__

if TYPE_CHECKING:
    from bf_jupyter.bitfusion.sim.placement import Placement, Pool
    from bf_jupyter.bitfusion.sim.processes import ProcessIdentity
    from bf_jupyter.bitfusion.sim.store import Lease, LeaseKind, Store
    from bf_jupyter.slice import GpuSlice

__all__ = [
    "Interrupted",
    "acquire",
    "info",
    "locked_message",
    "release_gpus",
    "request_gpus",
    "requesting_message",
]

_FIRST_DELAY_S = 0.02
_MAX_DELAY_S = 0.25


class Interrupted(Exception):
    """A forwarded signal arrived before the command started: the run is abandoned."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


def info(message: str, stream: TextIO | None = None) -> None:
    """One ``[INFO] <RFC3339 UTC> message`` line, as the real client prints them."""
    out = stream or sys.stderr
    try:
        out.write(f"[INFO] {rfc3339_now()} {message}\n")
        out.flush()
    except (OSError, ValueError):
        pass  # whoever read stderr went away: a report never stops a run or its release


def acquire(
    store: Store,
    pool: Pool,
    gpu_slice: GpuSlice,
    *,
    wait_s: float | None,
    kind: LeaseKind,
    holder: ProcessIdentity | None,
    holder_name: str,
    command: str,
    pending_signal: Callable[[], int | None] = lambda: None,
) -> tuple[Lease, Placement]:
    """Lease ``gpu_slice``, waiting up to ``wait_s`` seconds for capacity.

    Raises ``CannotServe`` at once when the slice can never fit or no wait was asked, else when the
    wait is over; ``Interrupted`` when ``pending_signal`` reports a signal while waiting.
    """
    deadline = time.monotonic() + (wait_s or 0.0)
    delay = _FIRST_DELAY_S
    waiting = False
    while True:
        try:
            return store.take(
                pool, gpu_slice, kind=kind, holder=holder, holder_name=holder_name, command=command
            )
        except CannotServe as refusal:
            left = deadline - time.monotonic()
            if refusal.permanent or not wait_s:
                raise
            if left <= 0:
                raise CannotServe(
                    f"{refusal} (after waiting {wait_s:g} s)", permanent=False
                ) from None
            if not waiting:
                info(f"Waiting up to {wait_s:g} s: {refusal}")
                waiting = True
        signum = pending_signal()
        if signum is not None:
            raise Interrupted(signum)
        time.sleep(min(delay, max(left, 0.0)))
        delay = min(delay * 2, _MAX_DELAY_S)
        signum = pending_signal()
        if signum is not None:
            raise Interrupted(signum)


def requesting_message(placement: Placement, *, simulated: bool) -> str:
    memory = sorted(set(placement.memory_mib))
    amount = f"{memory[0]}" if len(memory) == 1 else "/".join(str(m) for m in placement.memory_mib)
    version = f"bitfusion-sim {__version__}{' (simulated)' if simulated else ''}"
    gpus = ", ".join(str(g.index) for g in placement.gpus)
    return (
        f"Requesting GPUs [{gpus}] with {amount} MiB of memory from server "
        f"{placement.server.index}, with version {version}"
    )


def locked_message(lease: Lease, gpu_slice: GpuSlice, config_path: str) -> str:
    """``Locked N GPUs with partial memory F, configuration saved to '…'`` (other components grep
    ``Locked N GPUs``); in memory mode ``with M MiB of memory each``."""
    fraction = gpu_slice.fraction_text()
    share = (
        f"partial memory {fraction}" if fraction else f"{gpu_slice.memory_mib} MiB of memory each"
    )
    return f"Locked {len(lease.gpus)} GPUs with {share}, configuration saved to '{config_path}'"


def request_gpus(
    store: Store, pool: Pool, gpu_slice: GpuSlice, *, wait_s: float | None, stdout: TextIO
) -> int:
    """``request_gpus``: a lease with no process behind it (never reaped). Prints the INFO lines to
    stderr and the lease ID alone on stdout, for ``release_gpus ID``. Returns the exit code."""
    lease, placement = acquire(
        store,
        pool,
        gpu_slice,
        wait_s=wait_s,
        kind="request",
        holder=None,
        holder_name="request_gpus",
        command="",
    )
    info(requesting_message(placement, simulated=pool.simulated))
    info(locked_message(lease, gpu_slice, str(store.lease_file(lease.lease_id))))
    stdout.write(f"{lease.lease_id}\n")
    stdout.flush()
    return 0


def release_gpus(store: Store, lease_ids: list[int], *, release_all: bool) -> int:
    """``release_gpus``: release the named requested leases, all of them (``release_all``), or the
    only one there is. Raises ``SimError``/``UsageError`` naming the leases there are."""
    store.reap()
    requested = {lease.lease_id: lease for lease in store.leases() if lease.kind == "request"}
    running = {lease.lease_id: lease for lease in store.leases() if lease.kind == "run"}
    if release_all:
        chosen = sorted(requested)
    elif lease_ids:
        chosen = lease_ids
    elif len(requested) == 1:
        chosen = list(requested)
    elif not requested:
        raise SimError("there are no requested leases to release (see bitfusion-sim list_gpus)")
    else:
        raise UsageError(
            f"there are {len(requested)} requested leases ({_ids(requested)}): name one, e.g. release_gpus {min(requested)}, or use --all"
        )
    for lease_id in chosen:
        if lease_id in running:
            holder = running[lease_id].holder
            raise SimError(
                f"lease {lease_id} belongs to a running 'bitfusion-sim run' (pid {holder.pid if holder else '?'}): it is released when that command ends"
            )
        if lease_id not in requested:
            raise SimError(
                f"there is no lease {lease_id} to release (requested leases: {_ids(requested) or 'none'})"
            )
    for lease_id in chosen:
        config = store.lease_file(lease_id)
        info(f"Releasing GPUs from config file '{config}'")
        store.release(lease_id)
        info(f"Released GPUs on 1 servers and removed generated config file '{config}'")
    return 0


def _ids(leases: Iterable[int]) -> str:
    return ", ".join(str(i) for i in sorted(leases))
