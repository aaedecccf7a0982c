"""How ``%bitfusion`` lines are understood, and every way they are refused (one line each)."""

from __future__ import annotations

import pytest

from bf_jupyter.notebook.magic_args import (
    OVERVIEW,
    SUBCOMMANDS,
    HelpRequested,
    MagicError,
    parse_cell_line,
    parse_line,
)
from bf_jupyter.slice import GpuSlice


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("run 1x50% -- python train.py", GpuSlice(1, 50)),
        ("run -n 1 -p 0.5 -- python train.py", GpuSlice(1, 50)),
        ("run 2x8Gi -- python train.py", GpuSlice(2, memory_bytes=8 << 30)),
        ("run -n 2 -m 8192 -- python train.py", GpuSlice(2, memory_bytes=8 << 30)),
        ("run 1 -- python train.py", GpuSlice(1)),
    ],
)
def test_run_accepts_text_slices_and_client_flags(line: str, expected: GpuSlice) -> None:
    parsed = parse_line(line)

    assert parsed.subcommand == "run"
    assert parsed.gpu_slice == expected
    assert parsed.command == ("python", "train.py")


def test_run_picks_its_own_options_out_of_client_flags() -> None:
    parsed = parse_line("run -n 1 --wait 30 -p 0.5 --filter device.name=V100 -- python t.py -v")

    assert parsed.options.wait == 30
    assert parsed.gpu_slice is not None
    assert parsed.gpu_slice.to_text() == "1x50% device.name=V100"
    assert parsed.command == ("python", "t.py", "-v")


def test_words_after_the_separator_belong_to_the_command_even_when_they_look_like_options() -> None:
    parsed = parse_line("run 1x50% -- python -c 'print(1)' --wait 3 --help")

    assert parsed.command == ("python", "-c", "print(1)", "--wait", "3", "--help")
    assert parsed.options.wait is None


def test_submit_reads_image_name_namespace_and_switches() -> None:
    parsed = parse_line(
        "submit 2x8Gi --image reg/tf:1 --name train-a --namespace ml --job --detach -- python t.py"
    )

    options = parsed.options
    assert (options.image, options.name, options.namespace) == ("reg/tf:1", "train-a", "ml")
    assert options.job and options.detach
    assert parsed.gpu_slice == GpuSlice(2, memory_bytes=8 << 30)


def test_logs_cancel_and_jobs_take_names_and_flags() -> None:
    assert parse_line("logs train-a -f").options.follow
    assert parse_line("cancel train-a --namespace ml").options.namespace == "ml"
    assert parse_line("jobs --all").options.all


def test_cell_line_holds_a_slice_and_an_optional_wait() -> None:
    parsed = parse_cell_line("-n 1 -p 0.25 --wait 5")

    assert parsed.gpu_slice == GpuSlice(1, 25)
    assert parsed.options.wait == 5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("run -n 0 -- x", "%bitfusion run: -n 0 is out of range: use 1–64"),
        ("run 1x150% -- x", "%bitfusion run: gpu-percent 150 is out of range: use 1–100"),
        ("run 1x50%", "%bitfusion run: needs '-- CMD' after the slice"),
        ("run -- python t.py", "%bitfusion run: needs a SLICE"),
        ("run --wait -1 1 -- x", "%bitfusion run: --wait -1 is negative"),
        ("run --wait 1x50% -- x", "%bitfusion run: argument --wait: invalid float value"),
        ("run 1x50% --bogus -- x", "%bitfusion run: unknown option --bogus"),
        ("run -n 1 --bogus 2 -- x", "%bitfusion run: argument --bogus is not a slice option"),
        ("submit 1 -- x", "%bitfusion submit: the following arguments are required: --image"),
        ("logs", "%bitfusion logs: the following arguments are required: NAME"),
        ("cancel a b", "%bitfusion cancel: unrecognized arguments: b"),
        ("status -- x", "%bitfusion status: takes no command after '--'"),
        ("frobnicate", "%bitfusion: unknown subcommand 'frobnicate': use status, smi, run"),
        ('run "1x50% -- x', "%bitfusion: cannot split the line (No closing quotation)"),
    ],
)
def test_refusals_are_one_line_naming_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(MagicError) as refused:
        parse_line(line)

    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_a_refusal_renders_as_one_line_instead_of_a_traceback() -> None:
    error = MagicError("run", "gpu-percent 150 is out of range: use 1–100")

    rendered = error._render_traceback_()

    assert len(rendered) == 1
    assert "%bitfusion run: gpu-percent 150 is out of range" in rendered[0]


def test_cell_line_refusals_name_the_cell_magic() -> None:
    with pytest.raises(MagicError, match=r"^%bitfusion cell: needs a SLICE"):
        parse_cell_line("")


@pytest.mark.parametrize("line", ["", "--help", "-h", "help"])
def test_nothing_or_help_prints_the_overview(line: str) -> None:
    with pytest.raises(HelpRequested) as asked:
        parse_line(line)

    assert asked.value.text == OVERVIEW
    for name in SUBCOMMANDS:
        assert f"%bitfusion {name}" in OVERVIEW
    assert "%%bitfusion SLICE" in OVERVIEW
    assert "variables do not leak" in OVERVIEW


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_every_subcommand_has_help_with_usage_and_examples(name: str) -> None:
    with pytest.raises(HelpRequested) as asked:
        parse_line(f"{name} --help")

    text = asked.value.text
    assert text.startswith(f"usage: %bitfusion {name}")
    assert "examples:\n  %bitfusion " + name in text


def test_slice_help_shows_both_forms_and_cell_help_says_variables_do_not_leak() -> None:
    with pytest.raises(HelpRequested) as run_help:
        parse_line("run -h")
    with pytest.raises(HelpRequested) as cell_help:
        parse_cell_line("--help")

    assert "1x50%" in run_help.value.text and "-n 1 -p 0.5" in run_help.value.text
    assert "do not leak into the kernel" in cell_help.value.text
