"""``%load_ext bf_jupyter``: fast to load, one magic for lines and cells, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

HEAVY = ("tensorflow", "keras", "kubernetes", "jax", "torch", "numpy", "anywidget", "ipywidgets")


def test_loading_the_extension_imports_nothing_heavy() -> None:
    code = (
        "import sys; from IPython.core.interactiveshell import InteractiveShell;"
        "InteractiveShell.instance().run_line_magic('load_ext', 'bf_jupyter');"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert loaded.stdout.strip() == ""


def test_the_magic_is_registered_for_lines_and_cells(shell: Any) -> None:
    magics = shell.magics_manager.magics

    assert "bitfusion" in magics["line"]
    assert "bitfusion" in magics["cell"]


def test_unloading_removes_the_magic(shell: Any) -> None:
    shell.run_line_magic("unload_ext", "bf_jupyter")

    assert "bitfusion" not in shell.magics_manager.magics["line"]
    shell.run_line_magic("load_ext", "bf_jupyter")
    assert "bitfusion" in shell.magics_manager.magics["cell"]


def test_the_magic_alone_prints_the_overview(
    shell: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_line_magic("bitfusion", "")

    assert capsys.readouterr().out.startswith("%bitfusion — run work on fractional GPU slices")


def test_a_bad_slice_fails_the_cell_with_one_line_and_no_traceback(
    shell: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell("%bitfusion run 1x150% -- python train.py")

    assert result.error_in_exec is not None
    shown = capsys.readouterr()
    lines = [line for line in (shown.out + shown.err).splitlines() if line.strip()]
    assert len(lines) == 1
    assert "%bitfusion run: gpu-percent 150 is out of range: use 1–100" in lines[0]
    assert "Traceback" not in shown.out + shown.err


def test_a_missing_client_is_one_line(
    shell: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BF_BITFUSION_BIN", "/nonexistent/bitfusion")

    shell.run_cell("%bitfusion run 1 -- true")

    shown = capsys.readouterr()
    assert "%bitfusion run: $BF_BITFUSION_BIN=/nonexistent/bitfusion is not an executable file" in (
        shown.out + shown.err
    )
    assert "Traceback" not in shown.out + shown.err


def test_kernelspecs_get_an_argv_that_loads_the_extension() -> None:
    from bf_jupyter.notebook import kernel_argv

    argv = kernel_argv("/opt/conda/bin/python")

    assert argv == [
        "/opt/conda/bin/python",
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
        "--ext",
        "bf_jupyter",
    ]


def test_an_unforeseen_failure_is_still_one_line(
    shell: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bf_jupyter.notebook import local_commands

    def broken() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local_commands, "show_smi", broken)

    result = shell.run_cell("%bitfusion smi")

    assert result.error_in_exec is not None
    shown = capsys.readouterr()
    assert (
        "%bitfusion smi: failed unexpectedly (OSError: [Errno 28] No space left on device)"
        in shown.err + shown.out
    )
    assert "Traceback" not in shown.err + shown.out


def test_gpu_is_the_same_magic_and_goes_with_it(
    shell: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_line_magic("gpu", "")
    assert capsys.readouterr().out.startswith("%bitfusion — run work on fractional GPU slices")
    assert "gpu" in shell.magics_manager.magics["cell"]

    shell.run_line_magic("unload_ext", "bf_jupyter")

    assert "gpu" not in shell.magics_manager.magics["line"]
    shell.run_line_magic("load_ext", "bf_jupyter")
    assert "gpu" in shell.magics_manager.magics["line"]
