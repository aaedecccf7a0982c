"""Real processes: output arrives while the command runs, and an interrupt stops it in steps."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bf_jupyter.notebook.local_runner import run_streaming


def test_lines_arrive_while_the_command_is_still_running(script: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    program = script(
        "wait.py",
        f"""
        import pathlib, sys, time
        print("ready", flush=True)
        while not pathlib.Path({str(gate)!r}).exists():
            time.sleep(0.01)
        print("done", flush=True)
        print("warning", file=sys.stderr, flush=True)
        """,
    )
    seen: list[tuple[str, str]] = []

    def on_line(stream: str, line: str) -> None:
        seen.append((stream, line))
        if line == "ready":  # only a streamed line can open the gate the command waits for
            gate.touch()

    result = run_streaming([sys.executable, str(program)], on_line=on_line)

    assert result.exit_code == 0 and not result.interrupted
    assert seen[0] == ("stdout", "ready")
    assert set(seen[1:]) == {("stdout", "done"), ("stderr", "warning")}


def test_the_exit_code_of_the_command_is_reported(script: Any) -> None:
    program = script("fail.py", "import sys; sys.exit(3)")

    assert (
        run_streaming([sys.executable, str(program)], on_line=lambda stream, line: None).exit_code
        == 3
    )


def test_an_interrupt_sends_sigint_first(script: Any) -> None:
    program = script(
        "interruptible.py",
        """
        import time
        try:
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print("got SIGINT", flush=True)
            raise SystemExit(130)
        """,
    )
    seen: list[str] = []

    def on_line(stream: str, line: str) -> None:
        seen.append(line)
        if line == "ready":
            raise KeyboardInterrupt

    result = run_streaming([sys.executable, str(program)], on_line=on_line, grace=10)

    assert result.interrupted and result.exit_code == 130
    assert "got SIGINT" in seen


def test_a_command_ignoring_sigint_and_sigterm_is_killed_with_its_children(
    script: Any, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    program = script(
        "stubborn.py",
        f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        print("ready", flush=True)
        time.sleep(60)
        """,
    )

    def on_line(stream: str, line: str) -> None:
        if line == "ready":
            raise KeyboardInterrupt

    result = run_streaming([sys.executable, str(program)], on_line=on_line, grace=0.3)

    assert result.interrupted and result.exit_code == 128 + 9
    parent, child = (int(p) for p in pids.read_text().split())
    assert _gone(parent) and _gone(child)


def test_processes_left_behind_by_a_finished_command_are_killed(
    script: Any, tmp_path: Path
) -> None:
    pid_file = tmp_path / "orphan"
    program = script(
        "leaves_orphan.py",
        f"""
        import subprocess, sys
        orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open({str(pid_file)!r}, "w").write(str(orphan.pid))
        """,
    )

    result = run_streaming([sys.executable, str(program)], on_line=lambda stream, line: None)

    assert result.exit_code == 0
    assert _gone(int(pid_file.read_text()))


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """True once ``pid`` is dead (a zombie counts: it holds nothing), waiting for SIGKILL to land."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.01)
    return False
