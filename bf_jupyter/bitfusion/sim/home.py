"""The state folder (``$BF_SIM_HOME``) and its database stay private to the user who runs the pool.

Whoever can write the folder can forge or delete leases, and the lease files name the commands
that hold them: the folder is 0700 and the database (with its ``-wal``/``-shm``) 0600. A folder
this user created earlier with looser modes (before this rule) is tightened; one that is shared
(sticky, like ``/tmp``) or owned by another user is refused, since tightening it would break
whoever else uses it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from bf_jupyter.bitfusion.sim.errors import SimError

__all__ = ["DATABASE_MODE", "HOME_MODE", "private_database", "private_home"]

HOME_MODE = 0o700
DATABASE_MODE = 0o600
_DATABASE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def private_home(home: Path) -> None:
    """Create ``home`` (mode 0700) or make an existing one 0700. Raises ``SimError`` when it
    cannot be created, is not a folder, is a shared folder or belongs to another user."""
    try:
        home.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
        info = home.stat()
    except OSError as error:
        raise SimError(
            f"cannot create the state directory {home} ({error.strerror or error}): set BF_SIM_HOME to a writable directory"
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise SimError(f"state directory {home} is not a directory: set BF_SIM_HOME to a directory")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077 == 0:
        return
    if mode & stat.S_ISVTX:
        raise SimError(
            f"state directory {home} is a shared folder (mode {mode:o}): set BF_SIM_HOME to a folder of its own"
        )
    if info.st_uid != os.geteuid():
        raise SimError(
            f"state directory {home} belongs to user {info.st_uid} and is open to others (mode {mode:o}): set BF_SIM_HOME to a folder of your own"
        )
    try:
        home.chmod(mode & ~0o077)
    except OSError as error:
        raise SimError(
            f"cannot make the state directory {home} private ({error.strerror or error}): run chmod 700 on it"
        ) from None


def private_database(path: Path) -> None:
    """Create the database file ``path`` with mode 0600, or take group and other bits away from
    it and its journal files. SQLite gives the journal files the database's mode."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATABASE_MODE))
    for suffix in _DATABASE_SUFFIXES:
        part = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(part.stat().st_mode)
            if mode & 0o077:
                part.chmod(mode & ~0o077)
