"""The slice guard's judgement of ``bitfusion run`` options against the pod's slice: every spelling
of -n/-p/-m, more than the slice refused with one line naming the slice, within it let through."""

from __future__ import annotations

import pytest

from bf_jupyter.bitfusion.guard import GuardRefusal, check_run
from bf_jupyter.slice import GpuSlice

HALF = GpuSlice.parse("2x50%")
MEMORY = GpuSlice.parse("1x8Gi")

WITHIN = [
    ["-n", "2", "-p", "0.5", "--", "python", "x.py"],
    ["-n", "1", "-p", "0.25", "--", "python"],
    ["-n1", "-p0.5", "--", "x"],
    ["--num_gpus=2", "--partial=0.5", "--", "x"],
    ["-n", "2", "-p", "0.5", "--filter", "device.name=V100", "--", "x", "-n", "64"],
]
BEYOND = [
    ["-n", "3", "-p", "0.5", "--", "x"],
    ["-n", "2", "--", "x"],  # no -p: whole GPUs
    ["-n", "2", "-p", "0.51", "--", "x"],
    ["-n2", "-p1", "--", "x"],
    ["--num_gpus=4", "-p", "0.1", "--", "x"],
    ["-n", "1", "-n", "8", "-p", "0.5", "--", "x"],  # the largest of repeated options counts
    ["-n", "1", "-m", "1024", "--", "x"],  # memory against a percent slice
    ["-n", "x", "-p", "0.5", "--", "x"],
    ["-n", "0", "-p", "0.5", "--", "x"],
    ["-n", "1", "-p"],
]


@pytest.mark.parametrize("args", WITHIN, ids=[" ".join(a) for a in WITHIN])
def test_requests_within_the_slice_pass(args: list[str]) -> None:
    check_run(args, HALF)


@pytest.mark.parametrize("args", BEYOND, ids=[" ".join(a) for a in BEYOND])
def test_requests_beyond_the_slice_are_refused_naming_it(args: list[str]) -> None:
    with pytest.raises(GuardRefusal) as refusal:
        check_run(args, HALF)
    assert "\n" not in str(refusal.value)


def test_the_command_after_the_separator_is_never_read_as_options() -> None:
    check_run(["-n", "1", "-p", "0.5", "--", "bitfusion", "run", "-n", "9"], HALF)


def test_memory_slices_accept_memory_requests_up_to_their_size() -> None:
    check_run(["-n", "1", "-m", "8192", "--", "x"], MEMORY)
    for args in (["-n", "1", "-m", "8193", "--", "x"], ["-n", "1", "-p", "0.1", "--", "x"]):
        with pytest.raises(GuardRefusal, match="this pod's slice is 1x8Gi"):
            check_run(args, MEMORY)
