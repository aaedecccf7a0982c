"""JupyterLab with bf-jupyter, started by ``bf-jupyter lab --backend local`` on 127.0.0.1 with a
token, and Debian's chromium driven by Playwright (never a downloaded browser).

The pool is bitfusion-sim's (two virtual servers of two 16 GiB GPUs). Kernels run under the
bitfusion-local provisioner when it is installed; until then the plain python3 kernelspec stands in.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType

import pytest

from tests.support.jupyter_process import Lab, running_server
from tests.ui.conftest import ARTIFACTS

HAVE_PROVISIONER = any(
    ep.name == "bitfusion-local" for ep in entry_points(group="jupyter_client.kernel_provisioners")
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A JupyterLab server with the extension on the local backend (pool: see the module doc)."""
    with running_lab(tmp_path_factory.mktemp("lab")) as lab:
        yield lab


@contextmanager
def running_lab(
    home: Path,
    *,
    env_changes: Callable[[dict[str, str]], None] = lambda env: None,
    settings: Mapping[str, object] = MappingProxyType({}),
) -> Iterator[Lab]:
    """``bf-jupyter lab --backend local`` in ``home`` on the virtual pool; ``env_changes`` edits
    its environment last (another pool, stand-ins on PATH), ``settings`` adds BitfusionExtension
    settings."""
    config, data = home / "config", home / "data"
    for folder in (config, data):
        folder.mkdir(parents=True)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "HOME": str(home),
    }
    extension: dict[str, object] = {"local_quota_units": 150, **settings}
    spec: dict[str, object] = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (GPU slice)",
        "language": "python",
    }
    env.pop("BF_BITFUSION_BIN", None)
    env |= {"BF_SIM_HOME": str(home / "sim"), "BF_SIM_POOL": "virtual", "BF_SIM_SERVERS": "2"}
    env["BF_SIM_GPU_NAME"] = "Simulated V100-16GB"
    if HAVE_PROVISIONER:
        spec["metadata"] = {"kernel_provisioner": {"provisioner_name": "bitfusion-local"}}
        spec_name = "bitfusion-local"
    else:
        extension["kernelspecs"] = ["python3"]
        spec_name = "python3"
    (data / "kernels" / spec_name).mkdir(parents=True)
    (data / "kernels" / spec_name / "kernel.json").write_text(json.dumps(spec))
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"BitfusionExtension": extension})
    )
    command = [str(Path(sys.executable).with_name("bf-jupyter")), "lab", "--backend", "local"]
    options = [
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.log_level=INFO",
    ]
    env_changes(env)
    with running_server(command, home=home, env=env, options=options) as lab:
        yield lab


@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 1400, "height": 900}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
