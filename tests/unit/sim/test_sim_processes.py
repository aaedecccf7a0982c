"""Recognising a lease's holder: pid plus start time, so a reused pid does not keep a lease alive."""

from __future__ import annotations

import os
import subprocess
import sys

from bf_jupyter.bitfusion.sim.discovery import LocalGpusUnavailable, parse_query
from bf_jupyter.bitfusion.sim.processes import ProcessIdentity, current_process, identify, is_alive


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
