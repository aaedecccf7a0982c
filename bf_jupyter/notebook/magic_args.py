"""What ``%bitfusion`` accepts: subcommands, their options, help with examples, and its errors.

A SLICE is parsed by ``GpuSlice.parse`` only (text form or the client's own flags), so the
magic's options are picked out of the words before ``--`` by name and every other word belongs to
the slice: ``run -n 1 -p 0.5 --wait 30 -- python train.py`` and ``run 1x50% --wait 30 -- python
train.py`` mean the same. Parsing is pure: no I/O.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bf_jupyter.argv import option_words
from bf_jupyter.slice import TEXT_FORMS, GpuSlice, SliceError

__all__ = [
    "OVERVIEW",
    "SUBCOMMANDS",
    "HelpRequested",
    "MagicError",
    "ParsedLine",
    "parse_cell_line",
    "parse_line",
]

_SLICE_HELP = (
    f"SLICE is {TEXT_FORMS} (optionally followed by filters such as device.name=V100),\n"
    "or the Bitfusion client's flags: -n 1 -p 0.5, -n 2 -m 8192 --filter device.name=V100."
)


class MagicError(Exception):
    """A ``%bitfusion`` failure shown as one line (IPython prints ``_render_traceback_`` instead of
    a traceback, and the cell still counts as failed, so "Run all" stops there)."""

    def __init__(self, subcommand: str, message: str) -> None:
        super().__init__(message)
        self.subcommand = subcommand
        self.message = message

    def __str__(self) -> str:
        where = f"%bitfusion {self.subcommand}" if self.subcommand else "%bitfusion"
        return f"{where}: {self.message}"

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{self}\x1b[0m"]


class HelpRequested(Exception):
    """``--help`` (or nothing) was asked: ``text`` is what to print."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


_Option = tuple[tuple[str, ...], Mapping[str, Any]]  # argparse flags and keyword arguments


@dataclass(frozen=True)
class _Spec:
    usage: str
    summary: str
    examples: tuple[str, ...]
    takes_slice: bool = False
    needs_command: bool = False
    options: tuple[_Option, ...] = ()
    notes: str = ""


_NAMESPACE: _Option = (
    ("--namespace",),
    {"metavar": "NS", "help": "Kubernetes namespace (default: this kernel's)"},
)
_WAIT: _Option = (
    ("--wait",),
    {
        "metavar": "S",
        "type": float,
        "help": "wait up to S seconds for GPUs to be free (client --wait)",
    },
)

SUBCOMMANDS: dict[str, _Spec] = {
    "status": _Spec(
        "%bitfusion status [--namespace NS]",
        "this kernel's slice, the Bitfusion client in use, the pool and the namespace's GPU quota",
        ("%bitfusion status",),
        options=(_NAMESPACE,),
    ),
    "smi": _Spec(
        "%bitfusion smi",
        "the pool's GPUs as the client's smi reports them",
        ("%bitfusion smi",),
    ),
    "run": _Spec(
        "%bitfusion run SLICE [--wait S] -- CMD [ARG ...]",
        "run CMD on a GPU slice from this kernel; output and live curves stream into the cell",
        (
            "%bitfusion run 1x50% -- python train.py --epochs 5",
            "%bitfusion run -n 2 -m 8192 --wait 60 -- python train.py",
            "%bitfusion run 1 device.name=V100 -- nvidia-smi",
        ),
        takes_slice=True,
        needs_command=True,
        options=(_WAIT,),
        notes=(
            "Interrupting the kernel (■, or I I) stops the command — SIGINT, then SIGTERM and SIGKILL\n"
            "after a grace period — and the slice is released. Metric records of\n"
            "bf_jupyter.notebook.keras_callback.LiveCurvesCallback become live curves; Stop ends\n"
            "training cleanly."
        ),
    ),
    "submit": _Spec(
        "%bitfusion submit SLICE --image IMG [--backend NAME] [--name NAME] [--namespace NS] [--job] [--detach] -- CMD [ARG ...]",
        "run CMD in a pod (or a Job) on the cluster on a GPU slice, and follow its logs and curves",
        (
            "%bitfusion submit 1x50% --image tensorflow/tensorflow:2.16.1 -- python /work/train.py",
            "%bitfusion submit 2x8Gi --image registry.local/vgg19 --job --detach -- python train.py",
            "%bitfusion submit 1x8Gi cores=30 --backend hami --image registry.local/vgg19 -- python train.py",
            "%bitfusion submit mig-1g.10gb --backend nvidia --image registry.local/vgg19 -- python train.py",
        ),
        takes_slice=True,
        needs_command=True,
        options=(
            (("--image",), {"metavar": "IMG", "required": True, "help": "container image"}),
            (
                ("--backend",),
                {
                    "metavar": "NAME",
                    "help": "GPU backend that serves the slice: bitfusion, hami, nvidia, "
                    "nvidia-time-slicing, nvidia-mps… (default: this kernel's, else bitfusion)",
                },
            ),
            (("--name",), {"metavar": "NAME", "help": "pod or job name (default: generated)"}),
            _NAMESPACE,
            (
                ("--job",),
                {"action": "store_true", "help": "create a batch/v1 Job instead of a Pod"},
            ),
            (("--detach",), {"action": "store_true", "help": "return once created; do not follow"}),
        ),
        notes=(
            "On bitfusion the pod asks for the slice with the bitfusion.io resource keys and the\n"
            "annotation auto-management/bitfusion: all, so the cluster's webhook runs CMD under\n"
            "`bitfusion run`; other backends put their own keys on it (bf-jupyter slice explain).\n"
            "Interrupting the kernel stops following; the work keeps running on the cluster."
        ),
    ),
    "jobs": _Spec(
        "%bitfusion jobs [--namespace NS] [--all]",
        "pods and jobs submitted with %bitfusion submit",
        ("%bitfusion jobs", "%bitfusion jobs --all --namespace ml-team"),
        options=(
            _NAMESPACE,
            (("--all",), {"action": "store_true", "help": "everyone's, not only yours"}),
        ),
    ),
    "logs": _Spec(
        "%bitfusion logs NAME [-f] [--namespace NS]",
        "output of a submitted pod or job, with its curves",
        ("%bitfusion logs train-3kq9x", "%bitfusion logs train-3kq9x -f"),
        options=(
            (("name",), {"metavar": "NAME", "help": "pod or job name"}),
            (("-f", "--follow"), {"action": "store_true", "help": "keep following new output"}),
            _NAMESPACE,
        ),
    ),
    "cancel": _Spec(
        "%bitfusion cancel NAME [--namespace NS]",
        "stop and delete a submitted pod or job (its slice is released)",
        ("%bitfusion cancel train-3kq9x",),
        options=((("name",), {"metavar": "NAME", "help": "pod or job name"}), _NAMESPACE),
    ),
}

CELL_SPEC = _Spec(
    "%%bitfusion SLICE [--wait S]",
    "run this cell's Python code as a separate process on a GPU slice",
    ("%%bitfusion 1x50%\nimport train\ntrain.main(epochs=5)",),
    takes_slice=True,
    options=(_WAIT,),
    notes=(
        "The cell runs in a NEW Python process (this kernel's interpreter and working directory):\n"
        "its variables do not leak into the kernel, and the kernel's variables are not visible in\n"
        "it. Output and live curves stream back; interrupting the kernel stops it and releases\n"
        "the slice."
    ),
)

OVERVIEW = "\n".join(
    [
        "%bitfusion — run work on fractional GPU slices (Bitfusion) from this notebook.",
        "",
        *(f"  {spec.usage}\n      {spec.summary}" for spec in SUBCOMMANDS.values()),
        f"  {CELL_SPEC.usage}\n      {CELL_SPEC.summary} (variables do not leak)",
        "",
        _SLICE_HELP,
        "Every subcommand has --help, e.g. %bitfusion run --help.",
    ]
)


@dataclass(frozen=True)
class ParsedLine:
    """One parsed ``%bitfusion`` line: the subcommand, its options, and for ``run``/``submit`` the
    slice and the command after ``--``."""

    subcommand: str
    options: argparse.Namespace
    gpu_slice: GpuSlice | None = None
    command: tuple[str, ...] = field(default=())


class _Parser(argparse.ArgumentParser):
    def __init__(self, name: str, spec: _Spec) -> None:
        epilog = "examples:\n" + "\n".join("  " + e.replace("\n", "\n  ") for e in spec.examples)
        if spec.takes_slice:
            epilog = _SLICE_HELP + "\n\n" + epilog
        if spec.notes:
            epilog = spec.notes + "\n\n" + epilog
        super().__init__(
            prog=spec.usage.split(" [")[0].split(" SLICE")[0].split(" NAME")[0],
            usage=spec.usage.replace("%", "%%"),  # argparse %-formats the usage
            description=spec.summary,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=False,
            allow_abbrev=False,
            exit_on_error=False,
        )
        self._subcommand = name
        self.add_argument("-h", "--help", action="store_true", help="show this help")
        for flags, kwargs in spec.options:
            self.add_argument(*flags, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise MagicError(self._subcommand, f"{message} (see --help)")


def parse_line(line: str) -> ParsedLine:
    """Parse a ``%bitfusion`` line. Raises ``HelpRequested`` or ``MagicError``."""
    words = _split(line, "")
    if not words or words[0] in {"-h", "--help", "help"}:
        raise HelpRequested(OVERVIEW)
    name, rest = words[0], words[1:]
    spec = SUBCOMMANDS.get(name)
    if spec is None:
        raise MagicError(
            "", f"unknown subcommand {name!r}: use {', '.join(SUBCOMMANDS)} (%bitfusion --help)"
        )
    return _parse(name, spec, rest)


def parse_cell_line(line: str) -> ParsedLine:
    """Parse the line of a ``%%bitfusion`` cell (``SLICE [--wait S]``)."""
    return _parse("cell", CELL_SPEC, _split(line, "cell"))


def _split(line: str, subcommand: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as error:
        raise MagicError(subcommand, f"cannot split the line ({error}): check the quotes") from None


def _parse(name: str, spec: _Spec, words: Sequence[str]) -> ParsedLine:
    parser = _Parser(name, spec)
    head, command = list(words), []
    if "--" in head:
        cut = head.index("--")
        head, command = head[:cut], head[cut + 1 :]
    ours, slice_words = _pick_options(head, parser) if spec.takes_slice else (head, [])
    if "-h" in ours or "--help" in ours:
        raise HelpRequested(parser.format_help())
    try:
        options = parser.parse_args(ours)
    except argparse.ArgumentError as error:
        raise MagicError(name, f"{error} (see --help)") from None
    if spec.needs_command and not command:
        example = spec.examples[0]
        raise MagicError(name, f"needs '-- CMD' after the slice, e.g. {example}")
    if not spec.needs_command and command:
        raise MagicError(name, f"takes no command after '--' (usage: {spec.usage})")
    if getattr(options, "wait", None) is not None and options.wait < 0:
        raise MagicError(name, f"--wait {options.wait:g} is negative: use 0 or more seconds")
    gpu_slice = _slice(name, slice_words) if spec.takes_slice else None
    return ParsedLine(name, options, gpu_slice, tuple(command))


def _pick_options(words: Sequence[str], parser: _Parser) -> tuple[list[str], list[str]]:
    """Split the words before ``--`` into the magic's own options and the slice's words."""
    takes_value = {
        flag: action.nargs != 0 for action in parser._actions for flag in action.option_strings
    }
    ours: list[str] = []
    slice_words: list[str] = []
    for word in option_words(list(words), takes_value):
        (slice_words if word.flag is None else ours).extend(word.words)
    return ours, slice_words


def _slice(name: str, words: Sequence[str]) -> GpuSlice:
    if not words:
        raise MagicError(name, f"needs a SLICE: use {TEXT_FORMS}, or -n N -p FRACTION")
    if not words[0].startswith("-"):  # text form: an option here is one of ours, misspelt
        stray = next((w for w in words[1:] if w.startswith("-") and w != "--filter"), None)
        if stray is not None:
            raise MagicError(name, f"unknown option {stray} (see --help)")
    try:
        return GpuSlice.parse(shlex.join(words))
    except SliceError as error:
        raise MagicError(name, str(error)) from None
