"""``%bitfusion run`` and ``%%bitfusion`` on a real pool (``bitfusion-sim``), in an IPython shell."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bf_jupyter.notebook.metric_records import encode_record

if TYPE_CHECKING:
    import pytest

    from tests.integration.notebook.conftest import Pool


def _output(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_run_streams_the_output_and_releases_the_slice(
    shell: Any, pool: Pool, script: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = script(
        "show.py",
        """
        import os
        print("slice:", os.environ["BF_SLICE"], "leased:", os.environ["BF_SIM_SLICE"])
        """,
    )

    result = shell.run_cell(f"%bitfusion run 1x50% -- {sys.executable} {program}")

    assert result.error_in_exec is None
    out = _output(capsys)
    assert "Locked 1 GPUs" in out
    assert "slice: 1x50% leased: 1x50%" in out
    assert pool.leases() == 0


def test_metric_records_are_hidden_and_shown_as_curves(
    shell: Any, pool: Pool, script: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        encode_record("begin", {"t": 1.0, "epochs": 2, "steps": 1, "batch_size": 4}),
        encode_record("batch", {"t": 1.5, "epoch": 0, "step": 0, "metrics": {"loss": [0.9]}}),
        encode_record("epoch", {"t": 2.0, "epoch": 0, "metrics": {"loss": 0.9, "val_loss": 1.1}}),
        encode_record("end", {"t": 3.0, "stopped": False}),
    ]
    program = script(
        "train.py", "print('training')\n" + "".join(f"print({r!r})\n" for r in records)
    )

    shell.run_cell(f"%bitfusion run -n 1 -p 0.5 -- {sys.executable} {program}")

    out = _output(capsys)
    assert "training" in out
    assert "BF-METRICS" not in out
    assert "epoch 1/2: loss 0.9 · val_loss 1.1" in out


def test_a_failing_command_fails_the_cell_in_one_line_and_releases_the_slice(
    shell: Any, pool: Pool, script: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    program = script("crash.py", "raise SystemExit(4)")

    result = shell.run_cell(f"%bitfusion run 1 -- {sys.executable} {program}")

    assert result.error_in_exec is not None
    assert f"%bitfusion run: {sys.executable} {program} exited with code 4" in _output(capsys)
    assert pool.leases() == 0


def test_a_slice_the_pool_cannot_serve_is_the_clients_reason_in_one_line(
    shell: Any, pool: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell("%bitfusion run 8 -- true")

    assert result.error_in_exec is not None
    line = next(t for t in _output(capsys).splitlines() if t.startswith(("%bitfusion", "\x1b")))
    assert "%bitfusion run: the Bitfusion client could not run the command on 8x100%" in line
    assert pool.leases() == 0


def test_a_cell_runs_as_its_own_process_on_the_slice_and_its_variables_stay_there(
    shell: Any, pool: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.user_ns["visible_in_kernel"] = 1

    result = shell.run_cell(
        "%%bitfusion 1x25%\n"
        "import os\n"
        "secret = 42\n"
        "print('cell slice', os.environ['BF_SLICE'])\n"
        "print('kernel variable visible:', 'visible_in_kernel' in globals())\n"
    )

    assert result.error_in_exec is None
    out = _output(capsys)
    assert "cell slice 1x25%" in out
    assert "kernel variable visible: False" in out
    assert "secret" not in shell.user_ns
    assert pool.leases() == 0


def test_a_failing_cell_shows_its_own_traceback_then_one_line(
    shell: Any, pool: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell("%%bitfusion 1\nraise ValueError('bad data')\n")

    assert result.error_in_exec is not None
    out = _output(capsys)
    assert "ValueError: bad data" in out
    assert "exited with code 1" in out
