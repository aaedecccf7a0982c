"""What `bitfusion run` prints, read as progress ("Locked") or as the reason a launch failed."""

from __future__ import annotations

from bf_jupyter.bitfusion.run_output import failure_reason, read_run_line


def test_locked_line_is_recognised_without_its_prefix_or_config_path() -> None:
    line = read_run_line(
        "[INFO] 2025-01-02T03:04:05Z Locked 1 GPUs with partial memory 0.5, configuration saved to '/tmp/bitfusion123'"
    )
    assert line.level == "INFO"
    assert line.locked_gpus == 1
    assert line.summary() == "Locked 1 GPUs with partial memory 0.5"


def test_other_lines_are_not_locked() -> None:
    line = read_run_line("[INFO] 2025-01-02T03:04:05Z Requesting GPUs [0] with 8080 MiB of memory")
    assert not line.locked
    assert line.text.startswith("Requesting GPUs")


def test_failure_reason_prefers_the_last_error_line() -> None:
    lines = [
        "[INFO] 2025-01-02T03:04:05Z Query server 10.1.2.3:56001 gpu availability",
        "[ERROR] 2025-01-02T03:04:06Z none of the servers responded correctly",
        "[INFO] 2025-01-02T03:04:06Z exiting",
    ]
    assert failure_reason(lines) == "none of the servers responded correctly"


def test_failure_reason_falls_back_to_the_last_line_or_a_default() -> None:
    assert failure_reason(
        ["Traceback ...", "ModuleNotFoundError: No module named 'ipykernel'"]
    ) == ("ModuleNotFoundError: No module named 'ipykernel'")
    assert failure_reason([], default="exit code 1") == "exit code 1"
