"""The pool's state: leases in SQLite under ``$BF_SIM_HOME``, shared by every ``bitfusion-sim``.

Concurrency: WAL mode, and every change is one ``BEGIN IMMEDIATE`` transaction, so two processes
never read the same free memory and both take it. A trigger refuses any row that would lease more
of a GPU than it has, so the database itself holds the invariant even if the placement logic erred.
The folder is 0700 and the database 0600 (``home.py``). Each lease also has a small JSON file (what the real client calls its generated configuration),
written after the commit and removed with the lease.

Leases of ``run`` are held by the ``bitfusion-sim`` process (pid + start time); one whose holder died
is removed ("reaped") on the next access, and what is left of its command's process group is killed
(the command itself already died with its holder, but not what it started). Leases of ``request_gpus`` have no holder and live until
``release_gpus``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bf_jupyter.bitfusion.sim.errors import CannotServe, SimError
from bf_jupyter.bitfusion.sim.home import private_database, private_home
from bf_jupyter.bitfusion.sim.placement import Placement, Pool, Usage, place
from bf_jupyter.bitfusion.sim.processes import (
    ProcessIdentity,
    holder_marker,
    is_alive,
    kill_process_group,
)

if TYPE_CHECKING:
    from bf_jupyter.slice import GpuSlice

__all__ = ["DB_NAME", "SCHEMA_VERSION", "Lease", "LeaseKind", "Store", "rfc3339_now"]

DB_NAME = "state.db"
LEASE_DIR = "leases"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
LeaseKind = Literal["run", "request"]
_TABLES = {"leases", "lease_gpus", "sqlite_sequence"}
_SCHEMA = (
    """CREATE TABLE leases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('run', 'request')),
        server INTEGER NOT NULL,
        address TEXT NOT NULL,
        slice TEXT NOT NULL,
        holder_pid INTEGER,
        holder_start INTEGER,
        holder_name TEXT NOT NULL,
        command TEXT NOT NULL,
        since TEXT NOT NULL,
        CHECK ((kind = 'run') = (holder_pid IS NOT NULL))
    )""",
    """CREATE TABLE lease_gpus (
        lease_id INTEGER NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
        server INTEGER NOT NULL,
        gpu INTEGER NOT NULL,
        memory_mib INTEGER NOT NULL CHECK (memory_mib > 0),
        capacity_mib INTEGER NOT NULL CHECK (memory_mib <= capacity_mib),
        PRIMARY KEY (lease_id, gpu)
    )""",
    "CREATE INDEX lease_gpus_by_gpu ON lease_gpus (server, gpu)",
    """CREATE TRIGGER lease_gpus_within_capacity BEFORE INSERT ON lease_gpus
    WHEN (SELECT COALESCE(SUM(memory_mib), 0) FROM lease_gpus
          WHERE server = NEW.server AND gpu = NEW.gpu) + NEW.memory_mib > NEW.capacity_mib
    BEGIN
        SELECT RAISE(ABORT, 'GPU memory over-committed');
    END""",
)


@dataclass(frozen=True)
class Lease:
    """A slice held on GPUs of one server."""

    lease_id: int
    kind: LeaseKind
    server: int
    address: str
    slice_text: str
    gpus: tuple[int, ...]
    memory_mib: tuple[int, ...]
    holder: ProcessIdentity | None
    holder_name: str
    command: str
    since: str


def rfc3339_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    """One open state database. Every method raises ``SimError`` (one line: which file, what to do)."""

    def __init__(self, home: Path, connection: sqlite3.Connection) -> None:
        self.home = home
        self.path = home / DB_NAME
        self._db = connection

    @classmethod
    def open(cls, home: Path) -> Store:
        """Open (creating if needed) the database in ``home``."""
        private_home(home)
        path = home / DB_NAME
        try:
            private_database(path)
        except OSError as error:
            raise SimError(
                f"cannot use the state database {path} ({error.strerror or error}): set BF_SIM_HOME to a writable directory"
            ) from None
        with _translated(path):
            connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        store = cls(home, connection)
        try:
            with _translated(path):
                store._prepare()
        except BaseException:
            connection.close()
            raise
        return store

    def close(self) -> None:
        self._db.close()

    def lease_file(self, lease_id: int) -> Path:
        return self.home / LEASE_DIR / f"{lease_id}.json"

    def command_file(self, lease_id: int) -> Path:
        """Where a ``run`` command records itself (``PID START``) before it executes, so that
        whatever it leaves behind can be killed when its lease is reaped."""
        return self.home / LEASE_DIR / f"{lease_id}.command"

    # ----- reading -------------------------------------------------------------------------------

    def leases(self) -> list[Lease]:
        """Every lease, oldest first (dead holders included: call ``reap`` first)."""
        with _translated(self.path):
            return self._leases(self._db)

    def integrity(self) -> str:
        """SQLite's ``quick_check`` verdict (``ok`` when sound), after a write lock was taken and
        given back (so a read-only database fails here, not in the middle of a run)."""
        with _translated(self.path):
            with self._transaction():
                pass
            return str(self._db.execute("PRAGMA quick_check").fetchone()[0])

    def usage(self) -> Usage:
        with _translated(self.path):
            return self._usage(self._db)

    # ----- changing ------------------------------------------------------------------------------

    def reap(self) -> list[Lease]:
        """Remove the ``run`` leases whose holder died; returns them."""
        with _translated(self.path):
            if not any(self._dead(lease) for lease in self._leases(self._db)):
                return []  # the common case stays a read: no write lock taken
            with self._transaction():
                reaped = self._reap_locked()
        self._remove_files(reaped)
        return reaped

    def take(
        self,
        pool: Pool,
        gpu_slice: GpuSlice,
        *,
        kind: LeaseKind,
        holder: ProcessIdentity | None,
        holder_name: str,
        command: str,
    ) -> tuple[Lease, Placement]:
        """Lease ``gpu_slice`` in one transaction (reaping dead holders first), write its lease file,
        and return it. Raises ``CannotServe`` (nothing changed) or ``SimError``."""
        reaped: list[Lease] = []
        try:
            # A refusal still commits the reaping: dead holders' memory is free for the next try.
            with _translated(self.path), self._transaction(commit_on=CannotServe):
                reaped = self._reap_locked()
                placement = place(pool, gpu_slice, self._usage(self._db))
                lease = self._insert(
                    placement,
                    gpu_slice,
                    kind=kind,
                    holder=holder,
                    holder_name=holder_name,
                    command=command,
                )
        finally:
            self._remove_files(reaped)
        try:
            self._write_file(lease, placement)
        except OSError as error:
            self.release(lease.lease_id)
            raise SimError(
                f"cannot write the lease file {self.lease_file(lease.lease_id)} ({error.strerror or error}): make BF_SIM_HOME writable"
            ) from None
        return lease, placement

    def release(self, lease_id: int) -> bool:
        """Remove a lease and its file; False when it was already gone (reaped or reset)."""
        with _translated(self.path), self._transaction():
            gone = self._db.execute("DELETE FROM leases WHERE id = ?", (lease_id,)).rowcount
        self.lease_file(lease_id).unlink(missing_ok=True)
        self.command_file(lease_id).unlink(missing_ok=True)
        return gone > 0

    # ----- internals -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        self._db.execute("PRAGMA foreign_keys = ON")
        # No fsync: every bitfusion-sim is the database's last user and would otherwise sync the
        # WAL and the database at each close, which takes up to 100+ ms on a busy disk. Locking and
        # atomicity are unchanged and a killed process never corrupts it; only an OS crash could,
        # and leases do not outlive one anyway (their holders die with it): health/reset cover it.
        self._db.execute("PRAGMA synchronous = OFF")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise SimError(
                f"state database {self.path} has schema {version}, newer than this bitfusion-sim ({SCHEMA_VERSION}): upgrade bf-jupyter, or point BF_SIM_HOME elsewhere"
            )
        self._db.execute("PRAGMA journal_mode = WAL")
        with self._transaction():
            if self._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                return  # another process created it meanwhile
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
            if tables - _TABLES:
                raise SimError(
                    f"{self.path} is not a bitfusion-sim state database (it has tables {', '.join(sorted(tables))}): point BF_SIM_HOME elsewhere"
                )
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self, *, commit_on: type[BaseException] | tuple[()] = ()) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``: the write lock is taken before anything is read."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except commit_on:
            self._db.execute("COMMIT")
            raise
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _reap_locked(self) -> list[Lease]:
        dead = [lease for lease in self._leases(self._db) if self._dead(lease)]
        for lease in dead:
            self._db.execute("DELETE FROM leases WHERE id = ?", (lease.lease_id,))
            leader = self._command_leader(lease.lease_id)
            if leader is not None:
                kill_process_group(leader, holder_marker(lease.holder))
        return dead

    @staticmethod
    def _dead(lease: Lease) -> bool:
        return lease.holder is not None and not is_alive(lease.holder)

    def _insert(
        self,
        placement: Placement,
        gpu_slice: GpuSlice,
        *,
        kind: LeaseKind,
        holder: ProcessIdentity | None,
        holder_name: str,
        command: str,
    ) -> Lease:
        since = rfc3339_now()
        server = placement.server
        cursor = self._db.execute(
            "INSERT INTO leases (kind, server, address, slice, holder_pid, holder_start,"
            " holder_name, command, since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                kind,
                server.index,
                server.address,
                gpu_slice.to_text(),
                holder.pid if holder else None,
                holder.start if holder else None,
                holder_name,
                command,
                since,
            ),
        )
        lease_id = int(cursor.lastrowid or 0)
        self._db.executemany(
            "INSERT INTO lease_gpus (lease_id, server, gpu, memory_mib, capacity_mib)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (lease_id, server.index, gpu.index, mib, gpu.memory_mib)
                for gpu, mib in zip(placement.gpus, placement.memory_mib, strict=True)
            ],
        )
        return Lease(
            lease_id,
            kind,
            server.index,
            server.address,
            gpu_slice.to_text(),
            tuple(g.index for g in placement.gpus),
            placement.memory_mib,
            holder,
            holder_name,
            command,
            since,
        )

    @staticmethod
    def _leases(db: sqlite3.Connection) -> list[Lease]:
        gpus: dict[int, list[tuple[int, int]]] = {}
        for lease_id, gpu, mib in db.execute(
            "SELECT lease_id, gpu, memory_mib FROM lease_gpus ORDER BY lease_id, gpu"
        ):
            gpus.setdefault(lease_id, []).append((gpu, mib))
        rows = db.execute(
            "SELECT id, kind, server, address, slice, holder_pid, holder_start, holder_name,"
            " command, since FROM leases ORDER BY id"
        )
        return [
            Lease(
                lease_id,
                kind,
                server,
                address,
                text,
                tuple(g for g, _ in gpus.get(lease_id, [])),
                tuple(m for _, m in gpus.get(lease_id, [])),
                ProcessIdentity(pid, start) if pid is not None else None,
                name,
                command,
                since,
            )
            for (
                lease_id,
                kind,
                server,
                address,
                text,
                pid,
                start,
                name,
                command,
                since,
            ) in rows
        ]

    @staticmethod
    def _usage(db: sqlite3.Connection) -> Usage:
        rows = db.execute(
            "SELECT server, gpu, SUM(memory_mib) FROM lease_gpus GROUP BY server, gpu"
        )
        return {(server, gpu): int(mib) for server, gpu, mib in rows}

    def _write_file(self, lease: Lease, placement: Placement) -> None:
        path = self.lease_file(lease.lease_id)
        path.parent.mkdir(exist_ok=True)
        record = {
            "lease": lease.lease_id,
            "slice": lease.slice_text,
            "server": {"index": lease.server, "address": lease.address},
            "gpus": [
                {
                    "index": gpu.index,
                    "name": gpu.name,
                    "memory_mib": mib,
                    "total_mib": gpu.memory_mib,
                }
                for gpu, mib in zip(placement.gpus, placement.memory_mib, strict=True)
            ],
            "holder_pid": lease.holder.pid if lease.holder else None,
            "since": lease.since,
        }
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    def _remove_files(self, leases: list[Lease]) -> None:
        for lease in leases:
            self.lease_file(lease.lease_id).unlink(missing_ok=True)
            self.command_file(lease.lease_id).unlink(missing_ok=True)

    def _command_leader(self, lease_id: int) -> ProcessIdentity | None:
        try:
            pid, start = self.command_file(lease_id).read_text(encoding="ascii").split()
            return ProcessIdentity(int(pid), int(start) if start != "-" else None)
        except (OSError, ValueError):
            return None  # the command never started, or ran in the terminal's process group


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Turn sqlite3 errors into one-line ``SimError``s that name the file and the fix."""
    try:
        yield
    except sqlite3.Error as error:
        raise _explain(error, path) from None


def _explain(error: sqlite3.Error, path: Path) -> SimError:
    text = str(error)
    if isinstance(error, sqlite3.OperationalError):
        if "locked" in text or "busy" in text:
            return SimError(
                f"state database {path} stayed locked for {BUSY_TIMEOUT_S:g} s ({text}): another bitfusion-sim holds it; try again"
            )
        if any(word in text for word in ("unable to open", "readonly", "disk I/O", "read-only")):
            return SimError(
                f"cannot use the state database {path} ({text}): set BF_SIM_HOME to a writable directory"
            )
        if "no such table" not in text and "no such column" not in text:
            return SimError(f"state database {path} failed: {text}")
    if isinstance(error, sqlite3.IntegrityError):
        return SimError(
            f"state database {path} refused a lease ({text}): this is a bug, please report it"
        )
    return SimError(
        f"state database {path} is corrupt ({text}): run 'bitfusion-sim reset' to move it aside and start an empty pool"
    )
