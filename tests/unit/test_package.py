"""Package-level promises: importing stays light, the console scripts are declared."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("tensorflow", "keras", "kubernetes", "grpc", "jax", "torch")


def test_import_pulls_in_no_heavy_library() -> None:
    code = (
        "import sys, bf_jupyter, bf_jupyter.slice, bf_jupyter.cli, bf_jupyter.bitfusion.client;"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_cli_without_a_command_prints_help_and_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bf_jupyter"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "usage: bf-jupyter" in result.stdout


def test_the_installed_distribution_has_the_version_module_s_version() -> None:
    from importlib.metadata import version

    import bf_jupyter
    from bf_jupyter.version import __version__

    assert version("bf-jupyter") == __version__ == bf_jupyter.__version__
