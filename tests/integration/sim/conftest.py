"""Fixtures for bitfusion-sim integration tests: real processes, real SQLite, one home per test."""

from __future__ import annotations

import os
import select
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("bitfusion-sim")


def sim_argv() -> list[str]:
    """The installed console script, else the module (as the adapter falls back to)."""
    if SCRIPT.is_file():
        return [str(SCRIPT)]
    return [sys.executable, "-m", "bf_jupyter.bitfusion.sim"]


@dataclass
class Sim:
    """Runs ``bitfusion-sim`` with its own state directory and a 2 × 16 GiB virtual pool."""

    home: Path
    env: dict[str, str]
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*sim_argv(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start ``bitfusion-sim ARGS`` with piped stdout/stderr; stopped at teardown."""
        process = subprocess.Popen(
            [*sim_argv(), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.started.append(process)
        return process

    @property
    def database(self) -> Path:
        return self.home / "state.db"

    def lease_rows(self) -> list[tuple[int, str]]:
        """(id, slice) of every lease row, read straight from the database."""
        if not self.database.exists():
            return []
        with sqlite3.connect(self.database) as db:
            return list(db.execute("SELECT id, slice FROM leases"))

    def lease_files(self) -> list[str]:
        folder = self.home / "leases"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    def stray_files(self) -> list[str]:
        """Files in the home that are neither the database nor its WAL companions."""
        allowed = {"state.db", "state.db-wal", "state.db-shm", "leases", "pool.yaml", "pool.json"}
        if not self.home.exists():
            return []
        return sorted(p.name for p in self.home.iterdir() if p.name not in allowed)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    home = tmp_path / "sim-home"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BF_SIM_", "BF_BITFUSION_", "CUDA_"))
    }
    env.update(
        {
            "BF_SIM_HOME": str(home),
            "BF_SIM_POOL": "virtual",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}",
        }
    )
    runner = Sim(home, env)
    yield runner
    for process in runner.started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()  # not read to the end: a leftover grandchild may hold it open


def read_until(stream: object, marker: str) -> list[str]:
    """Read lines from a text pipe until one contains ``marker`` (the event a test waits for)."""
    lines: list[str] = []
    readline = getattr(stream, "readline")  # noqa: B009  (typed as object: pipes are Optional)
    while True:
        line = readline()
        if not line:
            raise AssertionError(f"stream ended before {marker!r}; got {lines}")
        lines.append(line)
        if marker in line:
            return lines


def wait_until_gone(pid: int, timeout: float = 10) -> bool:
    """Wait for process ``pid`` (not necessarily our child) to exit; True when it did."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([handle], [], [], timeout)
        return bool(readable) or _is_zombie(pid)
    finally:
        os.close(handle)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def info_free(stderr: str) -> list[str]:
    """stderr without the client's [INFO] lines."""
    return [line for line in lines_of(stderr) if not line.startswith("[INFO]")]


def child_script(code: str) -> Sequence[str]:
    """A Python child command (argv) running ``code``."""
    return [sys.executable, "-c", code]
