"""How ``bitfusion-sim run`` splits its arguments: ``--wait`` and ``--`` here, the slice via the contract."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bf_jupyter.bitfusion.sim.cli import parse_slice, split_run_args, split_wait
from bf_jupyter.bitfusion.sim.errors import UsageError
from bf_jupyter.slice import Filter, GpuSlice


def test_run_arguments_split_into_slice_flags_wait_and_command() -> None:
    flags, wait, command = split_run_args(
        ["-n", "2", "--wait", "30", "-p", "0.5", "--", "python", "-c", "print('--')", "--"]
    )
    assert flags == ["-n", "2", "-p", "0.5"]
    assert wait == 30
    assert command == ["python", "-c", "print('--')", "--"]  # only the first '--' separates


def test_wait_accepts_the_inline_form_and_fractions() -> None:
    assert split_wait(["-n", "1", "--wait=0.25"]) == (["-n", "1"], 0.25)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["-n", "1", "-p", "0.5", "python"], "'--' is missing"),
        (["-n", "1", "--"], "no command after '--'"),
        (["-n", "1", "--wait", "--", "true"], "--wait needs a value"),
        (["-n", "1", "--wait", "soon", "--", "true"], "--wait soon is not a number"),
        (["-n", "1", "--wait", "nan", "--", "true"], "--wait nan is not a number"),
        (["-n", "1", "--wait"], "'--' is missing"),
    ],
)
def test_run_arguments_that_cannot_split_are_usage_errors(args: list[str], said: str) -> None:
    with pytest.raises(UsageError) as refused:
        split_run_args(args)
    assert said in str(refused.value)
    assert refused.value.exit_code == 2


def test_wait_without_a_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--wait needs a value"):
        split_wait(["-n", "1", "--wait"])


@given(st.lists(st.text(min_size=1).filter(lambda a: not a.startswith("--wait"))))
def test_arguments_without_wait_pass_through_unchanged(args: list[str]) -> None:
    assert split_wait(args) == (args, None)


def test_the_slice_comes_from_the_contracts_client_flag_parser() -> None:
    flags = ["-n", "2", "-m", "8192", "--filter", "device.name=V100"]
    assert parse_slice(flags) == GpuSlice.from_client_args(flags)
    assert parse_slice(flags).filters == (Filter("device.name", "V100"),)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["-n", "0", "-p", "0.5"], "-n 0 is out of range: use 1–64"),
        (["-n", "1", "-p", "1.5"], "-p 1.5 is out of range"),
        (["-n", "1", "-p", "0.5", "-m", "10"], "cannot be combined with -p"),
        (["-n", "1", "--filter", "colour=red"], "filter colour is not a filter key"),
        (["-n", "1", "--filter", "server.has-rdma=maybe"], "has no yes/no value"),
        (["-n", "1", "--filter", "device.phy-memory=big"], "is not a memory size"),
    ],
)
def test_bad_slices_are_usage_errors_with_the_contracts_message(
    flags: list[str], said: str
) -> None:
    with pytest.raises(UsageError) as refused:
        parse_slice(flags)
    assert said in str(refused.value)
