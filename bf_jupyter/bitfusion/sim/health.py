"""``health`` (is the pool usable?) and ``reset`` (start an empty pool, keeping the old state aside).

``health`` prints one ``Checking … OK|FAILED`` line per check, the shape
``bf_jupyter.bitfusion.records.parse_health`` reads, and exits 0 only when every check passed.
``reset`` never deletes the database: it renames it (and its WAL files) with a time stamp, so a
corrupt state can still be inspected, and refuses while leases are active unless forced.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from bf_jupyter.bitfusion.sim.config import config_file, load_pool, state_home
from bf_jupyter.bitfusion.sim.errors import SimError
from bf_jupyter.bitfusion.sim.store import DB_NAME, LEASE_DIR, SCHEMA_VERSION, Store

__all__ = ["check_health", "reset_state"]

_SIDE_FILES = ("", "-wal", "-shm")


def check_health(env: Mapping[str, str], out: TextIO) -> int:
    """Run the checks, print a line for each, return 0 when all passed, else 1."""
    home = state_home(env)
    checks: list[tuple[str, Callable[[], str]]] = [
        ("configuration", lambda: _configuration(env, home)),
        (f"state directory {home}", lambda: _writable(home)),
        (f"state database {home / DB_NAME}", lambda: _database(home)),
    ]
    healthy = True
    for name, check in checks:
        try:
            detail = check()
        except SimError as problem:
            out.write(f"Checking {name}: {_one_line(problem)} ... FAILED\n")
            healthy = False
        else:
            out.write(f"Checking {name} ({detail}) ... OK\n")
    out.flush()
    return 0 if healthy else 1


def reset_state(home: Path, *, force: bool, out: TextIO) -> int:
    """Move the state database aside (never delete it) and remove the lease files.

    Raises ``SimError`` while leases are active (unless ``force``) or when the files cannot be moved.
    """
    database = home / DB_NAME
    if not database.exists():
        out.write(f"Nothing to reset: {database} does not exist; the pool is empty.\n")
        return 0
    if not force:
        active = _active_leases(home)
        if active:
            raise SimError(
                f"{len(active)} leases are active ({', '.join(active)}): release them or stop their commands, or reset --force"
            )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept = home / f"{DB_NAME}.{stamp}.bak"
    try:
        for suffix in _SIDE_FILES:
            source = home / f"{DB_NAME}{suffix}"
            if source.exists():
                source.rename(home / f"{kept.name}{suffix}")
        for lease_file in (home / LEASE_DIR).glob("*.json"):
            lease_file.unlink(missing_ok=True)
    except OSError as error:
        raise SimError(f"cannot move {database} aside ({error.strerror or error})") from None
    out.write(f"Moved the state database to {kept}; the pool is empty now.\n")
    return 0


def _configuration(env: Mapping[str, str], home: Path) -> str:
    path = config_file(env, home)
    pool = load_pool(env, home)
    gpus = ", ".join(
        f"server {s.index} [{s.address}]: {len(s.gpus)} × "
        + "/".join(sorted({f"{g.memory_mib} MiB" for g in s.gpus}))
        for s in pool.servers
    )
    kind = "simulated" if pool.simulated else "real"
    return f"{kind}, {pool.source}, file {path or 'none'}; {gpus}"


def _writable(home: Path) -> str:
    probe = home / f".health-{os.getpid()}"
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe.write_text("", encoding="utf-8")
    except OSError as error:
        raise SimError(
            f"not writable ({error.strerror or error}): set BF_SIM_HOME to a writable directory"
        ) from None
    finally:
        probe.unlink(missing_ok=True)
    return "writable"


def _database(home: Path) -> str:
    store = Store.open(home)
    try:
        verdict = store.integrity()
        if verdict != "ok":
            raise SimError(
                f"integrity check says {verdict!r}: run 'bitfusion-sim reset' to move it aside and start an empty pool"
            )
        reaped = store.reap()
        leases = store.leases()
    finally:
        store.close()
    return f"schema {SCHEMA_VERSION}, readable and writable, {len(leases)} leases, {len(reaped)} reaped"


def _active_leases(home: Path) -> list[str]:
    try:
        store = Store.open(home)
    except SimError:
        return []  # unreadable or corrupt: that is what reset is for
    try:
        store.reap()
        return [f"lease {lease.lease_id} {lease.slice_text}" for lease in store.leases()]
    except SimError:
        return []
    finally:
        store.close()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
