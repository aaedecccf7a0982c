"""``exit_with_server`` becomes the command it is given, or says in one line why it cannot."""

from __future__ import annotations

import os
import subprocess
import sys

GUARD = [sys.executable, "-m", "bf_jupyter.kernels.exit_with_server"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GUARD, *args], capture_output=True, text=True, timeout=60, check=False)


def test_it_becomes_the_command_of_a_live_server() -> None:
    # this test process stands for the server: it is the guard's parent
    guard = subprocess.Popen(
        [*GUARD, str(os.getpid()), "--", "sh", "-c", "echo $$; exit 3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = guard.communicate(timeout=60)
    # the command ran in the guard's own process (exec: no process added) with its exit code
    assert (guard.returncode, out) == (3, f"{guard.pid}\n")


def test_it_starts_nothing_once_the_server_has_exited() -> None:
    done = _run("1", "--", "sh", "-c", "echo should not run")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "the notebook server (pid 1) has exited: not starting the kernel\n"


def test_a_missing_command_or_bad_usage_is_one_line() -> None:
    missing = _run(str(os.getpid()), "--", "/nonexistent/bitfusion", "run")
    assert (missing.returncode, missing.stderr) == (
        127,
        "/nonexistent/bitfusion: No such file or directory\n",
    )
    usage = _run("not-a-pid", "--", "true")
    assert usage.returncode == 2
    assert usage.stderr.startswith("usage: python -m bf_jupyter.kernels.exit_with_server")
