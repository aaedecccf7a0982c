"""``bitfusion-sim run`` with real processes: accounting under contention, signals, exit codes,
reaping after SIGKILL, and waiting for capacity."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

from tests.integration.sim.conftest import (
    Sim,
    child_script,
    info_free,
    lines_of,
    read_until,
    sim_argv,
    wait_until_gone,
)

GPU_MIB = 16384
RECORD = (
    'echo "$BF_SIM_LEASED_GPUS $BF_GPU_MEMORY_MIB $(date +%s%N)" > "$RECORD_DIR/$BF_SIM_LEASE_ID";'
    ' sleep 0.3; date +%s%N >> "$RECORD_DIR/$BF_SIM_LEASE_ID"'
)
SIGNAL_CHILD = """
import signal, sys
def stop(signum, frame):
    print(f"got {signum}", flush=True)
    sys.exit(40 + signum)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, stop)
print("ready", flush=True)
while True:
    signal.pause()
"""


def _peak_per_gpu(records: list[str]) -> dict[str, int]:
    """Sweep the children's own [start, end] intervals: the most MiB held at once on each GPU."""
    events: list[tuple[int, int, str, int]] = []
    for record in records:
        first, end = record.splitlines()
        gpu, mib, start = first.split()
        events += [(int(start), 1, gpu, int(mib)), (int(end), 0, gpu, -int(mib))]
    held: dict[str, int] = {}
    peak: dict[str, int] = {}
    for _, _, gpu, delta in sorted(events):  # at equal times an end (0) sorts before a start
        held[gpu] = held.get(gpu, 0) + delta
        peak[gpu] = max(peak.get(gpu, 0), held[gpu])
    return peak


def test_twenty_concurrent_runs_never_overcommit_a_gpu_and_leave_no_lease(
    sim: Sim, tmp_path: Path
) -> None:
    # given a 2-GPU pool and a sampler reading the database while the runs compete
    records = tmp_path / "records"
    records.mkdir()
    sim.env["RECORD_DIR"] = str(records)
    assert sim("list_gpus").returncode == 0  # creates the database
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        with sqlite3.connect(sim.database) as db:
            while not done.wait(0.01):
                rows = db.execute("SELECT SUM(memory_mib) FROM lease_gpus GROUP BY server, gpu")
                samples.extend(int(total) for (total,) in rows)

    sampler = threading.Thread(target=sample)
    sampler.start()
    # when 20 runs of 30 % each start at once (at most 3 fit on a GPU)
    try:
        runs = [
            sim.start("run", "-n", "1", "-p", "0.3", "--wait", "120", "--", "sh", "-c", RECORD)
            for _ in range(20)
        ]
        results = [(run.wait(timeout=180), run.communicate()[1]) for run in runs]
    finally:
        done.set()
        sampler.join()
    # then every run got its slice, no GPU ever held more than its memory, and nothing is left
    assert [code for code, _ in results] == [0] * 20, [err for _, err in results]
    files = sorted(records.iterdir())
    assert len(files) == 20
    peaks = _peak_per_gpu([f.read_text() for f in files])
    assert set(peaks) <= {"0", "1"}
    assert max(peaks.values()) <= GPU_MIB
    assert max(samples, default=0) <= GPU_MIB
    assert all("Locked 1 GPUs with partial memory 0.3" in err for _, err in results)
    assert sim.lease_rows() == []
    assert sim.lease_files() == []
    assert sim.stray_files() == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signals_reach_the_command_once_it_runs_and_its_exit_code_is_returned(
    sim: Sim, signum: int
) -> None:
    # given a command that reports the signals it gets
    run = sim.start("run", "-n", "1", "-p", "0.5", "--", *child_script(SIGNAL_CHILD))
    read_until(run.stdout, "ready")
    # when bitfusion-sim is signalled
    run.send_signal(signum)
    # then the command got the signal, its exit code is bitfusion-sim's, and the lease is released
    read_until(run.stdout, f"got {signum}")
    assert run.wait(timeout=30) == 40 + signum
    assert "Released GPUs on 1 servers" in run.communicate()[1]
    assert sim.lease_rows() == []


def test_a_command_killed_by_a_signal_gives_128_plus_the_signal(sim: Sim) -> None:
    run = sim.start("run", "-n", "1", "-p", "0.5", "--", "sh", "-c", "echo ready; exec sleep 60")
    read_until(run.stdout, "ready")
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 128 + signal.SIGTERM
    assert sim.lease_rows() == []


def test_the_commands_exit_code_is_returned(sim: Sim) -> None:
    result = sim("run", "-n", "1", "-m", "1024", "--", "sh", "-c", "exit 3")
    assert result.returncode == 3
    assert "Locked 1 GPUs with 1024 MiB of memory each" in result.stderr
    assert sim.lease_rows() == []


def test_the_command_sees_its_slice_in_the_environment(sim: Sim) -> None:
    show = "import os; print(*(f'{k}={os.environ[k]}' for k in sorted(os.environ)), sep=chr(10))"
    result = sim("run", "-n", "2", "-p", "0.25", "--", *child_script(show))
    env = dict(line.split("=", 1) for line in lines_of(result.stdout))
    assert result.returncode == 0
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # simulated GPUs: no real GPU may be used
    assert env["BF_GPU_MEMORY_MIB"] == "4096"
    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.25"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert env["BF_SIM_SLICE"] == "2x25%"
    assert env["BF_SIM_LEASED_GPUS"] == "0,1"
    assert env["BF_SIM_LEASE_ID"].isdigit()


def test_a_sigkilled_runs_command_dies_and_its_lease_is_reaped_by_the_next_access(
    sim: Sim,
) -> None:
    # given a run whose command started a process of its own
    run = sim.start(
        "run", "-n", "1", "-p", "0.5", "--", "sh", "-c", "echo $$; sleep 1000 & echo $!; wait"
    )
    assert run.stdout is not None
    command, grandchild = int(run.stdout.readline()), int(run.stdout.readline())
    try:
        # when bitfusion-sim is SIGKILLed
        run.kill()
        run.wait(timeout=30)
        # then its command dies with it, the lease stays until the pool is next touched, then goes
        assert wait_until_gone(command)
        assert len(sim.lease_rows()) == 1
        listing = sim("list_gpus")
        assert listing.returncode == 0
        assert "lease" not in listing.stdout
        assert sim.lease_rows() == []
        assert sim.lease_files() == []
        assert wait_until_gone(grandchild)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(grandchild, signal.SIGKILL)  # only if the test failed: leave nothing behind


def test_a_run_waits_for_capacity_and_starts_when_it_is_released(sim: Sim) -> None:
    # given the whole pool held by a request
    held = sim("request_gpus", "-n", "2", "-p", "1")
    assert held.returncode == 0, held.stderr
    # when a run waits for half a GPU and the request is released
    waiter = sim.start("run", "-n", "1", "-p", "0.5", "--wait", "120", "--", "true")
    read_until(waiter.stderr, "Waiting up to 120 s")
    assert sim("release_gpus", held.stdout.strip()).returncode == 0
    # then the run gets its slice and succeeds
    assert waiter.wait(timeout=120) == 0
    assert sim.lease_rows() == []


def test_a_wait_that_runs_out_fails_with_one_line_saying_what_is_free(sim: Sim) -> None:
    assert sim("request_gpus", "-n", "2", "-p", "0.8").returncode == 0
    result = sim("run", "-n", "1", "-p", "0.5", "--wait", "0.3", "--", "true")
    assert result.returncode == 1
    [line] = info_free(result.stderr)
    assert "cannot serve 1 GPU × 50 % of each GPU (8192 MiB per GPU) now" in line
    assert "GPU 0 3277 of 16384 MiB, GPU 1 3277 of 16384 MiB" in line
    assert "after waiting 0.3 s" in line
    assert len(sim.lease_rows()) == 1  # only the request


def test_many_first_uses_of_a_fresh_home_create_one_database_without_errors(sim: Sim) -> None:
    listings = [sim.start("list_gpus") for _ in range(8)]
    results = [(listing.wait(timeout=120), listing.communicate()[1]) for listing in listings]
    assert results == [(0, "")] * 8
    assert sim("run", "-n", "1", "-p", "0.5", "--", "true").returncode == 0


def test_a_reader_that_closed_stderr_does_not_keep_the_lease(sim: Sim) -> None:
    run = sim.start("run", "-n", "1", "-p", "0.5", "--", "true")
    assert run.stderr is not None
    run.stderr.close()  # every [INFO] line now meets a broken pipe
    assert run.wait(timeout=60) == 0
    assert sim.lease_rows() == []
    assert sim.lease_files() == []


def _ctrl_c_in_a_terminal(sim: Sim, *, when: bytes) -> int:
    """Run ``bitfusion-sim run`` in the foreground of a new terminal, press Ctrl-C once ``when``
    appears on it, and return bitfusion-sim's exit code."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: become bitfusion-sim
        command = ["sh", "-c", "printf 'RE%sDY\\n' A; exec sleep 60"]  # prints READY
        argv = [*sim_argv(), "run", "-n", "1", "-p", "0.5", "--", *command]
        os.execve(argv[0], argv, sim.env)
    try:
        seen = b""
        while when not in seen:
            ready, _, _ = select.select([terminal], [], [], 60)
            assert ready, seen
            seen += os.read(terminal, 4096)
        os.write(terminal, b"\x03")
        _, status = os.waitpid(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(terminal)
    return os.waitstatus_to_exitcode(status)


def test_in_a_terminal_ctrl_c_reaches_the_command_and_the_lease_is_released(sim: Sim) -> None:
    assert _ctrl_c_in_a_terminal(sim, when=b"READY") == 128 + signal.SIGINT
    assert sim.lease_rows() == []


def test_ctrl_c_while_the_command_is_starting_is_not_lost(sim: Sim) -> None:
    # Ctrl-C as soon as bitfusion-sim announces the command: before, while or after it starts
    assert _ctrl_c_in_a_terminal(sim, when=b"Running client command") == 128 + signal.SIGINT
    assert sim.lease_rows() == []


def test_what_the_command_leaves_in_its_group_is_killed_when_it_exits(sim: Sim) -> None:
    # given a command that starts a process of its own and exits without waiting for it
    done = sim(
        "run", "-n", "1", "-p", "0.5", "--", "sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"
    )
    leftover = int(done.stdout.split()[0])
    try:
        # then the run ends, and what it left on the released slice is gone
        assert done.returncode == 0
        assert wait_until_gone(leftover)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(leftover, signal.SIGKILL)


def test_a_leftover_whose_identity_cannot_be_confirmed_is_not_signalled(sim: Sim) -> None:
    # given a command that starts a process in its group but with an emptied environment
    # (nothing proves any more that it descends from this run)
    done = sim(
        "run",
        "-n",
        "1",
        "-p",
        "0.5",
        "--",
        "sh",
        "-c",
        "env -i sleep 1000 >/dev/null 2>&1 & echo $!",
    )
    stranger = int(done.stdout.split()[0])
    try:
        # then the run ends and leaves that process alone: it never signals what it cannot confirm
        assert done.returncode == 0
        assert not wait_until_gone(stranger, timeout=0.5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stranger, signal.SIGKILL)
