"""Framework caps on a share of a real GPU: the lease's environment, and the post-import hooks
applied to stand-ins for TensorFlow and PyTorch in a fresh Python process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bf_jupyter.gpucaps import SITE_DIR, cap_environment

ROOT = Path(__file__).parents[3]

FAKE_TORCH = """
calls = []
class cuda:
    @staticmethod
    def is_available(): return True
    @staticmethod
    def device_count(): return 2
    @staticmethod
    def set_per_process_memory_fraction(fraction, device): calls.append((fraction, device))
"""

FAKE_TF = """
calls = []
class _Config:
    class LogicalDeviceConfiguration:
        def __init__(self, memory_limit): self.memory_limit = memory_limit
    def list_physical_devices(self, kind): return ["GPU:0"] if kind == "GPU" else []
    def set_logical_device_configuration(self, device, configs):
        calls.append((device, [c.memory_limit for c in configs]))
config = _Config()
"""

FAKE_BROKEN_TORCH = """
class cuda:
    @staticmethod
    def is_available(): raise RuntimeError("CUDA driver version is insufficient")
"""


@pytest.fixture
def frameworks(tmp_path: Path) -> Path:
    (tmp_path / "torch.py").write_text(FAKE_TORCH)
    (tmp_path / "tensorflow.py").write_text(FAKE_TF)
    return tmp_path


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lease_env(frameworks: Path, fraction: float = 0.5, mib: int = 8192) -> dict[str, str]:
    base = {**os.environ, "PYTHONPATH": f"{frameworks}{os.pathsep}{ROOT}"}
    return {**base, **cap_environment(base, fraction=fraction, per_gpu_mib=mib)}


def test_the_environment_caps_jax_and_puts_the_hook_first() -> None:
    env = cap_environment({"PYTHONPATH": "/mine"}, fraction=0.5049, per_gpu_mib=8000)

    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == env["BF_GPU_MEMORY_FRACTION"] == "0.504"
    assert env["BF_GPU_MEMORY_MIB"] == "8000"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(SITE_DIR), "/mine"]


@pytest.mark.parametrize(("fraction", "mib"), [(0, 100), (1.5, 100), (0.5, 0)])
def test_bad_caps_are_refused_with_the_value(fraction: float, mib: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        cap_environment({}, fraction=fraction, per_gpu_mib=mib)


def test_torch_is_capped_on_every_gpu_as_it_is_imported(frameworks: Path) -> None:
    result = run_python("import torch; print(torch.calls)", lease_env(frameworks))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[(0.5, 0), (0.5, 1)]"


def test_tensorflow_gets_a_logical_device_with_the_slice_memory(frameworks: Path) -> None:
    result = run_python("import tensorflow as tf; print(tf.calls)", lease_env(frameworks, mib=6000))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[('GPU:0', [6000])]"


def test_without_a_capped_lease_nothing_is_hooked(frameworks: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{SITE_DIR}{os.pathsep}{frameworks}{os.pathsep}{ROOT}"}
    env.pop("BF_GPU_MEMORY_FRACTION", None)

    result = run_python("import torch; print(torch.calls)", env)

    assert result.stdout.strip() == "[]"


def test_a_cap_that_fails_leaves_the_import_working(tmp_path: Path) -> None:
    (tmp_path / "torch.py").write_text(FAKE_BROKEN_TORCH)

    result = run_python("import torch; print('imported')", lease_env(tmp_path))

    assert result.stdout.strip() == "imported"
    assert (
        "could not cap torch at the GPU slice: CUDA driver version is insufficient" in result.stderr
    )


def test_the_users_own_sitecustomize_still_runs(frameworks: Path, tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import builtins; builtins.OWN_SITE = True\n")
    env = lease_env(frameworks)
    env["PYTHONPATH"] += os.pathsep + str(own)

    result = run_python(
        "import builtins, json; print(json.dumps(getattr(builtins, 'OWN_SITE', False)))", env
    )

    assert json.loads(result.stdout) is True


@pytest.mark.parametrize(
    ("simulated", "percent", "capped"), [(False, 50, True), (False, 100, False), (True, 50, False)]
)
def test_bitfusion_sim_caps_a_share_of_a_real_gpu_only(
    simulated: bool, percent: int, capped: bool
) -> None:
    from bf_jupyter.bitfusion.sim.placement import Gpu, Placement, Pool, Server
    from bf_jupyter.bitfusion.sim.runner import lease_environment
    from bf_jupyter.bitfusion.sim.store import Lease
    from bf_jupyter.slice import GpuSlice

    gpu = Gpu(0, "H100", 16384)
    server = Server(0, "127.0.0.1", "gpu-host", (gpu,))
    pool = Pool((server,), simulated=simulated, source="test")
    mib = 16384 * percent // 100
    placement = Placement(server, (gpu,), (mib,))
    lease = Lease(
        1, "run", 0, "127.0.0.1", f"1x{percent}%", (0,), (mib,), None, "python", "python", "now"
    )

    env = lease_environment(
        {"PYTHONPATH": ""}, lease, placement, pool, GpuSlice.parse(f"1x{percent}%")
    )

    assert ("BF_GPU_MEMORY_FRACTION" in env) is capped
    assert (str(SITE_DIR) in env["PYTHONPATH"]) is capped
