"""A daemon the e2e stack runs (the webhook server, the device plugin): its own process group, its
output kept in a log file and watched line by line so tests wait for "serving ..." rather than
sleep, and a stop that always ends the whole group (SIGTERM, a grace period, SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path


class ProcessFailed(RuntimeError):
    """The daemon exited, or never printed what was awaited; the message holds its last lines."""


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._process = subprocess.Popen(
            self.argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def exit_code(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return self._process.poll()

    def tail(self, count: int = 20) -> str:
        """The last ``count`` lines of its output (all of them once ``stop()`` returned)."""
        with self._changed:
            return "\n".join(self.lines[-count:])

    def _read(self) -> None:
        assert self._process.stdout is not None
        with self.log_path.open("w", encoding="utf-8") as log:
            for raw in self._process.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for_line(self, pattern: str, *, timeout: float = 15) -> re.Match[str]:
        """The first output line matching ``pattern``; ``ProcessFailed`` if it exits or times out."""
        compiled = re.compile(pattern)

        def found() -> re.Match[str] | None:
            return next((m for line in self.lines if (m := compiled.search(line))), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self._ended, timeout)
            match = found()
        if match is None:
            tail = "\n".join(self.lines[-15:])
            raise ProcessFailed(
                f"{self.name} did not print /{pattern}/ within {timeout:g}s; last output:\n{tail}"
            )
        return match

    def stop(self, *, grace: float = 5) -> int:
        """SIGTERM the process group, SIGKILL it after ``grace``; the exit code."""
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        code = self._process.wait()
        self._reader.join(5)
        if self._process.stdout is not None:
            self._process.stdout.close()
        return code
