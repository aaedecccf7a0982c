"""Injection mode end to end on this machine: the guard init container's command stages the guard,
the client init container's own script (the one the webhook injects) copies a client whose
``bitfusion`` is ``bitfusion-sim`` and puts the guard in its place, and the container then runs
``bitfusion run`` with the environment the webhook gave it: within the slice the real client runs
the command on a lease; beyond it, one line and no lease."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bf_jupyter.cluster.webhook import injection
from bf_jupyter.cluster.webhook.config import ClientBuild, WebhookConfig
from bf_jupyter.contract import SLICE_LIMIT_ENV, ManagementMode

SIM = Path(sys.executable).with_name("bitfusion-sim")
BUILD = ClientBuild("ubuntu20", "450", "bitfusion-client:test")


@pytest.fixture
def pod_dirs(tmp_path: Path) -> dict[str, Path]:
    """The client image's folder (``bitfusion`` runs bitfusion-sim), the token Secret's files, and
    the pod's empty client and token volumes."""
    image = tmp_path / "image-client"
    (image / "bin").mkdir(parents=True)
    client = image / "bin" / "bitfusion"
    client.write_text(f'#!/bin/sh\nexec "{SIM}" "$@"\n')
    client.chmod(0o755)
    secret = tmp_path / "token-secret"
    secret.mkdir()
    for name in injection.TOKEN_FILES:
        (secret / name).write_text(f"{name}\n")
    dirs = {"image": image, "secret": secret}
    for name in ("client", "token"):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
    return dirs


def run_init_containers(dirs: dict[str, Path]) -> None:
    """Each injected init container's command, with the pod's paths moved under ``dirs``."""
    config = WebhookConfig()
    moved = {
        BUILD.client_dir: str(dirs["image"]),
        "/bf-jupyter/client": str(dirs["client"]),
        "/bf-jupyter/token-secret": str(dirs["secret"]),
        "/bf-jupyter/token": str(dirs["token"]),
    }
    guard, client = injection.init_containers(BUILD, config, ManagementMode.INJECTION)
    stage = guard["command"][-1].replace("/bf-jupyter/client", str(dirs["client"]), 1)
    bf_jupyter = [sys.executable, "-m", "bf_jupyter.cli"]
    subprocess.run([*bf_jupyter, *guard["command"][1:-1], stage], check=True, timeout=60)
    command = [moved.get(arg, arg) for arg in client["command"]]
    subprocess.run(command, check=True, timeout=60)


def guarded_run(dirs: dict[str, Path], limit: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BF_SIM_", "BF_BITFUSION"))},
        "BF_SIM_HOME": str(dirs["client"].parent / "sim-home"),
        "BF_SIM_POOL": "virtual",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        SLICE_LIMIT_ENV: limit,
    }
    bitfusion = dirs["client"] / "bin" / "bitfusion"
    return subprocess.run(
        [str(bitfusion), "run", *args], env=env, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def test_the_init_containers_put_the_guard_in_front_of_the_real_client(
    pod_dirs: dict[str, Path],
) -> None:
    run_init_containers(pod_dirs)
    binary = pod_dirs["client"] / "bin" / "bitfusion"
    assert binary.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert (pod_dirs["client"] / "bin" / "bitfusion-real").read_text().startswith("#!/bin/sh")
    assert not (pod_dirs["client"] / ".bf-jupyter-guard").exists()
    assert (pod_dirs["token"] / "client.yaml").read_text() == "client.yaml\n"


def test_a_run_within_the_slice_reaches_the_real_client(pod_dirs: dict[str, Path]) -> None:
    run_init_containers(pod_dirs)
    result = guarded_run(
        pod_dirs, "1x50%", "-n", "1", "-p", "0.5", "--", "sh", "-c", 'echo "leased $BF_SIM_SLICE"'
    )
    assert result.returncode == 0, result.stderr
    assert "leased 1x50%" in result.stdout


@pytest.mark.parametrize(
    "request_args",
    [["-n", "2", "-p", "0.5"], ["-n", "1"], ["-n", "1", "-p", "0.9"], ["-n1", "-m", "4096"]],
)
def test_a_run_beyond_the_slice_is_refused_with_one_line_and_no_lease(
    pod_dirs: dict[str, Path], request_args: list[str]
) -> None:
    run_init_containers(pod_dirs)
    result = guarded_run(pod_dirs, "1x50%", *request_args, "--", "sh", "-c", "echo ran")
    assert result.returncode == 2 and "ran" not in result.stdout
    assert result.stderr.count("\n") == 1 and "this pod's slice is 1x50%" in result.stderr
    assert not (pod_dirs["client"].parent / "sim-home").exists()  # the real client never ran


def test_without_the_webhooks_limit_run_stays_closed(pod_dirs: dict[str, Path]) -> None:
    run_init_containers(pod_dirs)
    result = guarded_run(pod_dirs, "", "-n", "1", "-p", "0.1", "--", "true")
    assert result.returncode == 2 and "BF_JUPYTER_SLICE_LIMIT" in result.stderr


def test_other_subcommands_pass_through_unchanged(pod_dirs: dict[str, Path]) -> None:
    run_init_containers(pod_dirs)
    env = {
        **os.environ,
        "BF_SIM_HOME": str(pod_dirs["client"].parent / "h"),
        "BF_SIM_POOL": "virtual",
    }
    result = subprocess.run(
        [str(pod_dirs["client"] / "bin" / "bitfusion"), "list_gpus"], env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
