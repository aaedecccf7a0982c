"""Bad input to ``bitfusion-sim``: exit 2 (usage) or 1 (runtime), ONE line, nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.sim.conftest import Sim, info_free, lines_of

USAGE, RUNTIME = 2, 1


def _assert_clean(sim: Sim) -> None:
    assert sim.lease_rows() == []
    assert sim.lease_files() == []
    assert sim.stray_files() == []


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["-n", "0", "-p", "0.5", "--", "true"], USAGE, "-n 0 is out of range: use 1–64"),
        (["-n", "1", "-p", "1.5", "--", "true"], USAGE, "-p 1.5 is out of range"),
        (["-n", "1", "-p", "0.5", "-m", "100", "--", "true"], USAGE, "cannot be combined with -p"),
        (["-n", "1", "-p", "0.5", "true"], USAGE, "'--' is missing before the command"),
        (["-n", "1", "-p", "0.5", "--"], USAGE, "no command after '--'"),
        (["-n", "1", "-p", "0.5", "--filter", "gpu.colour=red", "--", "true"], USAGE, "is not a filter key"),
        (["-n", "1", "-p", "0.5", "--filter", "device.id=first", "--", "true"], USAGE, "is not a GPU index"),
        (["-n", "1", "-p", "0.5", "--wait", "-1", "--", "true"], USAGE, "--wait -1 is not a number of seconds"),
        (["-n", "1", "--bogus", "--", "true"], USAGE, "--bogus is not a slice option"),
        (["-n", "3", "-p", "0.5", "--", "true"], RUNTIME, "no server has 3 GPUs large enough"),
        (["-n", "1", "-m", "20000", "--", "true"], RUNTIME, "no server has 1 GPU large enough"),
        (["-n", "1", "-p", "0.5", "--filter", "device.name=V100", "--", "true"], RUNTIME, "matching device.name=V100"),
        (["-n", "1", "-p", "0.5", "--", "no-such-command-here"], 127, "command 'no-such-command-here' not found"),
    ],
)  # fmt: skip
def test_bad_run_arguments_give_one_line_and_leave_nothing(
    sim: Sim, args: list[str], code: int, said: str
) -> None:
    result = sim("run", *args)
    assert result.returncode == code
    assert lines_of(result.stderr) == info_free(result.stderr)  # not a single [INFO] line
    [line] = lines_of(result.stderr)
    assert line.startswith("bitfusion-sim run: ")
    assert said in line
    assert "Traceback" not in result.stderr
    _assert_clean(sim)


def test_a_corrupt_database_is_named_kept_and_can_be_reset(sim: Sim) -> None:
    # given a state database that is not SQLite
    sim.home.mkdir(parents=True)
    garbage = b"this is not a database\n" * 200
    sim.database.write_bytes(garbage)
    # when a run needs it
    result = sim("run", "-n", "1", "-p", "0.5", "--", "true")
    # then it fails with one line naming the file and the fix, and the file is left untouched
    assert result.returncode == RUNTIME
    [line] = lines_of(result.stderr)
    assert str(sim.database) in line
    assert "corrupt" in line
    assert "bitfusion-sim reset" in line
    assert sim.database.read_bytes() == garbage
    assert sim("health").returncode == RUNTIME
    # and reset moves it aside, after which the pool works again
    reset = sim("reset")
    assert reset.returncode == 0, reset.stderr
    kept = [p for p in sim.home.iterdir() if p.name.startswith("state.db.") and p.suffix == ".bak"]
    assert [p.read_bytes() for p in kept] == [garbage]
    assert sim("run", "-n", "1", "-p", "0.5", "--", "true").returncode == 0


def test_an_unusable_state_directory_is_one_runtime_error(sim: Sim, tmp_path: Path) -> None:
    # given BF_SIM_HOME below a regular file (unwritable even for root)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    sim.env["BF_SIM_HOME"] = str(blocker / "sim")
    result = sim("run", "-n", "1", "-p", "0.5", "--", "true")
    assert result.returncode == RUNTIME
    [line] = lines_of(result.stderr)
    assert "cannot create the state directory" in line
    assert "BF_SIM_HOME" in line
    assert blocker.read_text() == ""


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("BF_SIM_GPUS", "abc", "BF_SIM_GPUS 'abc' is not a count"),
        ("BF_SIM_GPU_MEMORY", "lots", "BF_SIM_GPU_MEMORY 'lots' is not a memory size"),
        ("BF_SIM_POOL", "cloud", "BF_SIM_POOL 'cloud' is not a pool mode"),
        ("BF_SIM_CONFIG", "/nonexistent/pool.yaml", "is not a file"),
    ],
)
def test_bad_configuration_is_a_usage_error_naming_the_setting(
    sim: Sim, variable: str, value: str, said: str
) -> None:
    sim.env[variable] = value
    result = sim("run", "-n", "1", "-p", "0.5", "--", "true")
    assert result.returncode == USAGE
    [line] = lines_of(result.stderr)
    assert said in line
    assert sim.lease_rows() == []


def test_an_invalid_pool_file_is_a_usage_error_naming_the_file(sim: Sim) -> None:
    sim.home.mkdir(parents=True)
    (sim.home / "pool.yaml").write_text("servers: [\n")
    result = sim("list_gpus")
    assert result.returncode == USAGE
    [line] = lines_of(result.stderr)
    assert f"{sim.home / 'pool.yaml'} is not valid YAML" in line


def test_an_unknown_command_is_a_usage_error(sim: Sim) -> None:
    result = sim("launch_rocket")
    assert result.returncode == USAGE
    assert lines_of(result.stderr) == [
        "bitfusion-sim launch_rocket: 'launch_rocket' is not a command: use run, request_gpus,"
        " release_gpus, list_gpus, smi, health, reset (see --help)"
    ]
