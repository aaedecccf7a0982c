"""The pool ``bitfusion-sim`` serves, from environment variables and a YAML/JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bf_jupyter.bitfusion.sim.config import config_file, load_pool, state_home
from bf_jupyter.bitfusion.sim.errors import UsageError

VIRTUAL = {"BF_SIM_POOL": "virtual"}


def test_the_default_pool_is_one_simulated_server_with_two_16gib_gpus(tmp_path: Path) -> None:
    pool = load_pool(VIRTUAL, tmp_path)
    assert pool.simulated
    [server] = pool.servers
    assert (server.index, server.address, server.hostname) == (0, "sim-0", "sim-0")
    assert [(g.index, g.memory_mib, g.name) for g in server.gpus] == [
        (0, 16384, "Simulated GPU 16Gi"),
        (1, 16384, "Simulated GPU 16Gi"),
    ]


def test_environment_variables_shape_the_virtual_pool(tmp_path: Path) -> None:
    env = {
        **VIRTUAL,
        "BF_SIM_SERVERS": "3",
        "BF_SIM_GPUS": "4",
        "BF_SIM_GPU_MEMORY": "40Gi",
        "BF_SIM_GPU_NAME": "A100",
    }
    pool = load_pool(env, tmp_path)
    assert [s.address for s in pool.servers] == ["sim-0", "sim-1", "sim-2"]
    assert {(len(s.gpus), g.memory_mib, g.name) for s in pool.servers for g in s.gpus} == {
        (4, 40960, "A100")
    }
    assert "BF_SIM_GPUS" in pool.source


def test_a_yaml_file_lists_servers_and_the_environment_overrides_its_shorthands(
    tmp_path: Path,
) -> None:
    (tmp_path / "pool.yaml").write_text(
        "pool: virtual\n"
        "gpus: 1\n"
        "gpu_memory: 8000  # MiB\n"
        "servers:\n"
        "  - {hostname: a, has_rdma: true, cuda_version: '11.8'}\n"
        "  - hostname: b\n"
        "    address: 10.0.0.2:56001\n"
        "    gpus: [{name: V100, memory: 16160Mi}, {memory: 32Gi}]\n"
    )
    pool = load_pool({"BF_SIM_GPU_MEMORY": "12Gi"}, tmp_path)
    first, second = pool.servers
    assert (first.address, first.has_rdma, first.cuda_version) == ("a", True, "11.8")
    assert [g.memory_mib for g in first.gpus] == [12288]
    assert second.address == "10.0.0.2:56001"
    assert [(g.name, g.memory_mib) for g in second.gpus] == [
        ("V100", 16160),
        ("Simulated GPU 32Gi", 32768),
    ]


def test_a_json_file_named_by_bf_sim_config_is_read(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.json"
    path.write_text(json.dumps({"pool": "virtual", "servers": 2, "gpus": 1}))
    pool = load_pool({"BF_SIM_CONFIG": str(path)}, tmp_path / "home")
    assert [len(s.gpus) for s in pool.servers] == [1, 1]
    assert config_file({"BF_SIM_CONFIG": str(path)}, tmp_path) == path


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("colour: red\n", "'colour' is not a setting: use pool, servers, gpus"),
        ("servers: [{name: x}]\n", "servers[0]: 'name' is not a setting"),
        ("servers: []\n", "is an empty list"),
        ("servers: 0\n", "is not a count: use a whole number 1–64"),
        ("gpus: many\n", "'many' is not a count"),
        ("gpu_memory: 0.5Mi\n", "is less than 1 MiB"),
        (
            "servers: [{gpus: [{memory: x}]}]\n",
            "servers[0].gpus[0].memory 'x' is not a memory size",
        ),
        ("servers: [{has_rdma: sometimes}]\n", "is not true or false"),
        ("- just\n- a list\n", "not a mapping"),
        ("pool: somewhere\n", "'somewhere' is not a pool mode: use auto, local, virtual"),
    ],
)
def test_bad_files_are_usage_errors_naming_the_setting(
    tmp_path: Path, text: str, said: str
) -> None:
    (tmp_path / "pool.yaml").write_text(text)
    with pytest.raises(UsageError) as refused:
        load_pool(VIRTUAL if "pool:" not in text else {}, tmp_path)
    assert said in str(refused.value)


def test_the_state_home_is_bf_sim_home_or_the_user_data_directory(tmp_path: Path) -> None:
    assert state_home({"BF_SIM_HOME": str(tmp_path)}) == tmp_path
    assert state_home({"XDG_DATA_HOME": "/data"}) == Path("/data/bf-jupyter/sim")
