"""What ``bitfusion-sim`` reports, read back through the client adapter as every component does:
``list_gpus``, ``smi``, ``health``, ``bf-jupyter pool``; and the pool's configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bf_jupyter.bitfusion.client import BitfusionClient, resolve_client
from bf_jupyter.slice import GpuSlice
from tests.integration.sim.conftest import Sim, child_script, lines_of, read_until, sim_argv

SHOW_ENV = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ.get('CUDA_DEVICE_ORDER'), os.environ['BF_SIM_SERVER'])"


@pytest.fixture
def client(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> BitfusionClient:
    """The adapter, resolved the way components do it, pointed at this test's pool."""
    for key, value in sim.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BF_BITFUSION_BIN", sim_argv()[0])
    return resolve_client()


def test_list_gpus_reads_back_servers_gpus_leases_and_the_simulated_mark(
    sim: Sim, client: BitfusionClient
) -> None:
    lease_id = sim("request_gpus", "-n", "1", "-p", "0.5").stdout.strip()
    pool = client.list_gpus()
    assert pool.simulated
    [server] = pool.servers
    assert (server.address, server.status) == ("sim-0", "running 1 tasks")
    assert [(g.index, g.memory_free_mib, g.memory_total_mib) for g in server.gpus] == [
        (0, 8192, 16384),
        (1, 16384, 16384),
    ]
    [lease] = server.leases
    assert (lease.lease_id, lease.slice_text, lease.gpus) == (lease_id, "1x50%", (0,))
    assert lease.holder.startswith("request_gpus")
    assert len(pool.unparsed) == 1
    assert pool.unparsed[0].startswith("Simulated pool (bitfusion-sim")


def test_a_running_command_is_listed_with_its_pid_and_name(
    sim: Sim, client: BitfusionClient
) -> None:
    run = sim.start("run", "-n", "2", "-m", "4096", "--", "sh", "-c", "echo ready; exec sleep 60")
    read_until(run.stdout, "ready")
    [lease] = client.list_gpus().servers[0].leases
    assert lease.slice_text == "2x4Gi"
    assert lease.gpus == (0, 1)
    assert lease.holder == f"pid {run.pid} (sh)"
    run.terminate()
    run.wait(timeout=30)


def test_smi_and_health_read_back_through_the_adapter(sim: Sim, client: BitfusionClient) -> None:
    sim("request_gpus", "-n", "1", "-p", "0.25")
    table = client.smi()
    assert "SIMULATED" in table
    assert "4096MiB / 16384MiB" in table
    report = client.health()
    assert report.healthy
    assert len(report.checks) == 3
    assert all(check.passed for check in report.checks)


def test_health_reports_a_corrupt_database_as_a_failed_check(
    sim: Sim, client: BitfusionClient
) -> None:
    sim.home.mkdir(parents=True)
    sim.database.write_bytes(b"garbage" * 500)
    report = client.health()
    assert not report.healthy
    failed = [check.text for check in report.checks if not check.passed]
    assert len(failed) == 1
    assert "corrupt" in failed[0]


def test_bf_jupyter_pool_json_shows_client_servers_gpus_and_leases(sim: Sim) -> None:
    sim("request_gpus", "-n", "2", "-p", "0.5")
    env = {**sim.env, "BF_BITFUSION_BIN": sim_argv()[0]}
    result = subprocess.run(
        [sys.executable, "-m", "bf_jupyter", "pool", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["client"]["name"] == "bitfusion-sim"
    assert report["client"]["simulator"] is True
    pool = report["pool"]
    assert pool["simulated"] is True
    assert pool["total_gpus"] == 2
    [server] = pool["servers"]
    assert [g["memory_used_mib"] for g in server["gpus"]] == [8192, 8192]
    assert server["leases"][0]["slice"] == "2x50%"
    text = subprocess.run(
        [sys.executable, "-m", "bf_jupyter", "pool"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Pool:   simulated" in text.stdout
    assert "[#####.....]" in text.stdout


def test_bf_jupyter_pool_says_in_one_line_when_the_client_cannot_run(sim: Sim) -> None:
    env = {**sim.env, "BF_BITFUSION_BIN": "/nonexistent/bitfusion"}
    result = subprocess.run(
        [sys.executable, "-m", "bf_jupyter", "pool"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    [line] = lines_of(result.stderr)
    assert "BF_BITFUSION_BIN=/nonexistent/bitfusion" in line


def _fake_nvidia_smi(folder: Path, body: str) -> Path:
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return folder


def test_this_machines_gpus_from_nvidia_smi_make_a_real_local_pool(
    sim: Sim, tmp_path: Path, client: BitfusionClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given nvidia-smi reporting two GPUs, and the pool left to choose (auto)
    query = "--query-gpu=index,name,memory.total --format=csv,noheader"
    fake = _fake_nvidia_smi(
        tmp_path / "bin",
        f'[ "$*" = "{query}" ] || exit 9\necho "0, NVIDIA H100 80GB HBM3, 81559 MiB"\necho "1, NVIDIA H100 80GB HBM3, 81559 MiB"',
    )
    sim.env["PATH"] = f"{fake}{os.pathsep}{sim.env['PATH']}"
    sim.env["BF_SIM_POOL"] = "auto"
    monkeypatch.setenv("PATH", sim.env["PATH"])
    monkeypatch.setenv("BF_SIM_POOL", "auto")
    # when the pool is listed and a command runs on it
    pool = client.list_gpus()
    sim("request_gpus", "-n", "1", "-p", "0.5")  # best fit: the next half goes to the same GPU
    result = sim("run", "-n", "1", "-p", "0.5", "--", *child_script(SHOW_ENV))
    # then it is not simulated, and the command sees the leased GPU
    assert not pool.simulated
    assert [g.name for g in pool.servers[0].gpus] == ["NVIDIA H100 80GB HBM3"] * 2
    assert pool.servers[0].gpus[0].memory_total_mib == 81559
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "PCI_BUS_ID", os.uname().nodename]


def test_a_local_pool_without_working_nvidia_smi_fails_in_one_line(
    sim: Sim, tmp_path: Path
) -> None:
    fake = _fake_nvidia_smi(tmp_path / "bin", 'echo "NVIDIA-SMI has failed" >&2; exit 9')
    sim.env["PATH"] = f"{fake}{os.pathsep}{sim.env['PATH']}"
    sim.env["BF_SIM_POOL"] = "local"
    result = sim("list_gpus")
    assert result.returncode == 1
    [line] = lines_of(result.stderr)
    assert "BF_SIM_POOL=local but nvidia-smi failed with exit code 9: NVIDIA-SMI has failed" in line
    sim.env["BF_SIM_POOL"] = "auto"  # auto falls back to the virtual pool
    assert "simulated" in sim("list_gpus").stdout


def test_filters_choose_servers_and_gpus_of_a_configured_pool(sim: Sim) -> None:
    # given two servers described in the pool file
    sim.home.mkdir(parents=True)
    (sim.home / "pool.yaml").write_text(
        "servers:\n"
        "  - hostname: alpha\n"
        "    gpus: [{name: Tesla V100-PCIE-16GB, memory: 16160Mi}]\n"
        "  - hostname: beta\n"
        "    address: 10.0.0.2:56001\n"
        "    gpus: 2\n"
        "    gpu_memory: 40Gi\n"
        "    gpu_name: A100-PCIE-40GB\n"
    )

    def server_of(*filters: str) -> str:
        args = [a for f in filters for a in ("--filter", f)]
        result = sim("run", "-n", "1", "-p", "0.5", *args, "--", *child_script(SHOW_ENV))
        assert result.returncode == 0, result.stderr
        return result.stdout.split()[-1]

    # then each filter selects the server that matches it
    assert server_of() == "alpha"
    assert server_of("server.hostname=beta") == "10.0.0.2:56001"
    assert server_of("device.name=a100") == "10.0.0.2:56001"
    assert server_of("device.phy-memory=16160") == "alpha"
    assert server_of("server.addr=10.0.0.2") == "10.0.0.2:56001"
    result = sim("run", "-n", "2", "-p", "0.5", "--filter", "server.hostname=alpha", "--", "true")
    assert result.returncode == 1
    assert "no server has 2 GPUs large enough" in result.stderr


def test_requested_leases_are_released_by_id_all_or_the_only_one(sim: Sim) -> None:
    assert sim("release_gpus").returncode == 1  # nothing to release
    first = sim("request_gpus", "-n", "1", "-p", "0.5").stdout.strip()
    second = sim("request_gpus", "-n", "1", "-p", "0.5").stdout.strip()
    ambiguous = sim("release_gpus")
    assert ambiguous.returncode == 2
    assert f"({first}, {second})" in ambiguous.stderr
    assert sim("release_gpus", first).returncode == 0
    only = sim("release_gpus")
    assert only.returncode == 0
    assert "Released GPUs on 1 servers" in only.stderr
    assert sim.lease_rows() == []
    assert sim("request_gpus", "-n", "1", "-p", "0.1").returncode == 0
    assert sim("release_gpus", "--all").returncode == 0
    assert sim.lease_rows() == []
    assert sim.lease_files() == []


def test_a_running_commands_lease_cannot_be_released_or_reset_away(sim: Sim) -> None:
    run = sim.start(
        "run", "-n", "1", "-p", "0.5", "--", "sh", "-c", "echo $BF_SIM_LEASE_ID; exec sleep 60"
    )
    assert run.stdout is not None
    lease_id = run.stdout.readline().strip()
    refused = sim("release_gpus", lease_id)
    assert refused.returncode == 1
    assert "belongs to a running 'bitfusion-sim run'" in refused.stderr
    assert sim("reset").returncode == 1
    run.terminate()
    assert run.wait(timeout=30) == 143
    assert sim.lease_rows() == []


def test_help_explains_commands_configuration_and_exit_codes(sim: Sim) -> None:
    overview = sim("--help")
    assert overview.returncode == 0
    for text in ("run -n N", "list_gpus", "BF_SIM_GPU_MEMORY", "exit codes", "pool: auto"):
        assert text in overview.stdout
    for command in ("run", "request_gpus", "release_gpus", "list_gpus", "smi", "health", "reset"):
        result = sim(command, "--help")
        assert result.returncode == 0
        assert f"usage: bitfusion-sim {command}" in result.stdout
        assert "BF_SIM_HOME" in result.stdout
    assert sim().returncode == 2


def test_the_adapters_run_argv_runs_on_the_simulator(client: BitfusionClient, sim: Sim) -> None:
    # given a slice with a filter, rendered by the adapter as every component renders it
    show = "import os; print(os.environ['BF_SIM_SLICE'], os.environ['BF_SIM_LEASED_GPUS'])"
    argv = client.run_argv(GpuSlice.parse("1x25% device.id=1"), child_script(show), wait_seconds=5)
    # when it runs
    result = subprocess.run(
        argv, env=sim.env, capture_output=True, text=True, timeout=60, check=False
    )
    # then the simulator understood every flag and leased the filtered GPU
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1x25%", "device.id=1", "1"]
    assert "Locked 1 GPUs with partial memory 0.25" in result.stderr
