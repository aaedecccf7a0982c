"""Recognising a lease's holder: pid plus start time, so a reused pid does not keep a lease alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from bf_jupyter.bitfusion.sim.discovery import LocalGpusUnavailable, parse_query
from bf_jupyter.bitfusion.sim.processes import (
    HOLDER_ENV,
    ProcessIdentity,
    current_process,
    holder_marker,
    identify,
    is_alive,
    kill_process_group,
)


def test_this_process_is_alive_under_its_identity() -> None:
    me = current_process()
    assert me.pid == os.getpid()
    assert is_alive(me)


def test_a_reused_pid_with_another_start_time_is_not_the_holder() -> None:
    me = current_process()
    assert me.start is not None
    assert not is_alive(ProcessIdentity(me.pid, me.start + 1))


def test_an_exited_process_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = identify(child.pid)
    child.wait()
    assert not is_alive(identity)


def test_nvidia_smi_lines_become_gpus() -> None:
    gpus = parse_query("0, NVIDIA H100 80GB HBM3, 81559 MiB\n1, Tesla V100, PCIE, 16160 MiB\n\n")
    assert [(g.index, g.name, g.memory_mib) for g in gpus] == [
        (0, "NVIDIA H100 80GB HBM3", 81559),
        (1, "Tesla V100, PCIE", 16160),
    ]


def test_unexpected_nvidia_smi_output_is_refused_in_words() -> None:
    for text in ("", "No devices were found\n", "0, H100\n"):
        try:
            parse_query(text)
        except LocalGpusUnavailable as reason:
            assert "nvidia-smi" in str(reason)
        else:
            raise AssertionError(f"accepted {text!r}")


# ----- only confirmed processes are ever signalled -------------------------------------------------


def _group_leader(environment: dict[str, str]) -> subprocess.Popen[bytes]:
    """A process leading a group of its own, with ``environment`` added to ours."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, **environment},
        start_new_session=True,
    )


def test_a_process_of_the_group_carrying_the_holders_mark_is_killed() -> None:
    holder = current_process()
    marker = holder_marker(holder)
    assert marker is not None
    leader = _group_leader({HOLDER_ENV: marker})
    try:
        assert kill_process_group(identify(leader.pid), marker) == 1
        assert leader.wait(timeout=30) == -signal.SIGKILL
    finally:
        leader.kill()
        leader.wait()


@pytest.mark.parametrize(
    "variant", ["no mark", "another holder's mark", "started before the leader", "no start time"]
)
def test_a_process_whose_identity_cannot_be_confirmed_is_never_signalled(variant: str) -> None:
    marker = holder_marker(current_process())
    assert marker is not None
    environment = {} if variant == "no mark" else {HOLDER_ENV: marker}
    process = _group_leader(environment)
    try:
        identity = identify(process.pid)
        assert identity.start is not None
        leader, given = identity, marker
        if variant == "another holder's mark":
            given = f"{os.getpid()}-{identity.start + 1}"
        elif variant == "started before the leader":
            leader = ProcessIdentity(process.pid, identity.start + 1)
        elif variant == "no start time":
            leader = ProcessIdentity(process.pid, None)
        assert kill_process_group(leader, given) == 0
        assert process.poll() is None
    finally:
        process.kill()
        process.wait()


def test_without_a_start_time_there_is_no_mark() -> None:
    assert holder_marker(ProcessIdentity(123, None)) is None
    assert holder_marker(None) is None
