"""A JupyterLab (or bare jupyter-server) with bf-jupyter on 127.0.0.1, for the benchmarks here.

Started as a user would (``bf-jupyter lab --backend local`` or ``jupyter server``), with a token,
in a throw-away home; stopped with SIGTERM so it shuts its kernels down. ``stand_in_pool`` points
``$BF_BITFUSION_BIN`` at a tiny script that prints a fixed ``list_gpus`` listing, for machines where
neither a real client nor ``bitfusion-sim`` is installed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.support
from tests.support.jupyter_process import Lab, running_server

LISTING = """\
 - server 0 [127.0.0.1:56001] (simulated): running 0 tasks
   |- GPU 0: free memory 16384 MiB / 16384 MiB (Simulated V100-16GB)
   |- GPU 1: free memory 8192 MiB / 16384 MiB (Simulated V100-16GB)
 - server 1 [127.0.0.2:56001] (simulated): running 0 tasks
   |- GPU 0: free memory 16384 MiB / 16384 MiB (Simulated V100-16GB)
"""


@contextmanager
def running_lab(
    *,
    server_only: bool = False,
    stand_in_pool: bool = False,
    extension: dict[str, object] | None = None,
    backend: str = "local",
    env_extra: dict[str, str] | None = None,
) -> Iterator[Lab]:
    """Start the server, wait until it answers, yield it, stop it."""
    with tempfile.TemporaryDirectory(prefix="bf-bench-") as folder:
        home = Path(folder)
        (home / "config").mkdir()
        (home / "config" / "jupyter_server_config.json").write_text(
            json.dumps({"BitfusionExtension": extension or {}})
        )
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "HOME": str(home)}
        env |= env_extra or {}
        if stand_in_pool:
            client = home / "bitfusion-stand-in"
            client.write_text(f"#!{sys.executable}\nprint({LISTING!r}, end='')\n")
            client.chmod(0o755)
            env["BF_BITFUSION_BIN"] = str(client)
        bin_dir = Path(sys.executable).parent
        command = (
            [str(bin_dir / "jupyter"), "server"]
            if server_only
            else [str(bin_dir / "bf-jupyter"), "lab", "--backend", backend]
        )
        options = [f"--BitfusionExtension.backend={backend}"]
        with running_server(command, home=home, env=env, options=options) as lab:
            yield lab
