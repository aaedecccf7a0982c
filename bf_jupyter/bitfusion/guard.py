"""The slice guard: a thin front installed as the injected client's ``bitfusion`` in injection mode.

In injection mode the webhook hands the client to a command it does not wrap. The guard stands where
the client's binary was (the real one is kept beside it as ``bitfusion-real``): ``bitfusion run``
whose ``-n``/``-p``/``-m`` ask for more than the pod's slice (``$BF_JUPYTER_SLICE_LIMIT``, set by the
webhook) is refused with one line, exit 2; anything within it, and every other subcommand, is
exec'd unchanged (the argv list as given, never a shell). It is a guard against a command that asks
for too much, not a sandbox: code in the container can still run ``bitfusion-real`` itself.

It lives in ``bitfusion/`` because it speaks the client's syntax and reads slices with ``GpuSlice``,
and nothing here may import the cluster side. It runs in the user's image, which has no bf-jupyter:
``stage`` (run by an init container of the bf-jupyter image) writes it as a self-contained zipapp
holding only this module and the pure slice modules (stdlib only; the image needs ``python3``).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from bf_jupyter.contract import SLICE_LIMIT_ENV
from bf_jupyter.slice import GpuSlice, SliceError

__all__ = [
    "HELP",
    "REAL_SUFFIX",
    "GuardRefusal",
    "add_arguments",
    "check_run",
    "main",
    "run",
    "stage",
]

HELP = "Stage the slice guard (the injected client's `bitfusion` in injection mode) as a zipapp"

REAL_SUFFIX = "-real"
EXIT_REFUSED = 2
# option spellings of `bitfusion run` that size the request, and whether they take a value
_AMOUNT = ("-n", "--num_gpus")
_PARTIAL = ("-p", "--partial")
_MEMORY = ("-m", "--memory")
_PACKAGE_FILES = ("__init__.py", "argv.py", "contract.py", "quantity.py", "slice.py", "version.py")


class GuardRefusal(ValueError):
    """The request exceeds the slice, or cannot be read; the message is the one line to print."""


def _sizing(options: Sequence[str]) -> dict[str, list[str]]:
    """The values of -n/-p/-m in ``options`` (every spelling: ``-n 2``, ``-n2``, ``--num_gpus=2``)."""
    found: dict[str, list[str]] = {"n": [], "p": [], "m": []}
    index = 0
    while index < len(options):
        token = options[index]
        for key, spellings in (("n", _AMOUNT), ("p", _PARTIAL), ("m", _MEMORY)):
            short, long = spellings
            value: str | None = None
            if token in spellings:
                if index + 1 >= len(options):
                    raise GuardRefusal(f"bitfusion run: {token} needs a value")
                index += 1
                value = options[index]
            elif token.startswith(long + "="):
                value = token[len(long) + 1 :]
            elif token.startswith(short) and not token.startswith("--") and len(token) > 2:
                value = token[2:]
            if value is not None:
                found[key].append(value)
                break
        index += 1
    return found


def check_run(args: Sequence[str], limit: GpuSlice) -> None:
    """Check the arguments after ``run`` against ``limit``. Raises ``GuardRefusal`` when the request
    asks for more GPUs, a larger share or more memory than the slice, or cannot be read."""
    options = list(args[: list(args).index("--")] if "--" in args else args)
    sizing = _sizing(options)
    allowed = f"this pod's slice is {limit.to_text()}"
    try:
        amounts = [int(v) for v in sizing["n"]] or [1]
        fractions = [float(v) for v in sizing["p"]]
        mebibytes = [int(v) for v in sizing["m"]]
    except ValueError:
        raise GuardRefusal(
            f"bitfusion run {' '.join(options)}: -n, -p and -m need numbers ({allowed})"
        ) from None
    if max(amounts) > limit.amount or min(amounts) < 1:
        raise GuardRefusal(f"bitfusion run asks for {max(amounts)} GPUs: {allowed}")
    if limit.memory_bytes is not None:
        if fractions or not mebibytes:
            raise GuardRefusal(
                f"bitfusion run must ask with -m MIB (at most {limit.memory_mib}): {allowed}"
            )
        if max(mebibytes) > (limit.memory_mib or 0):
            raise GuardRefusal(f"bitfusion run asks for -m {max(mebibytes)} MiB per GPU: {allowed}")
        return
    if mebibytes:
        raise GuardRefusal(f"bitfusion run must ask with -p FRACTION, not -m: {allowed}")
    share = max(fractions) if fractions else 1.0
    if share * 100 > (limit.percent or 100) + 1e-9 or share <= 0:
        raise GuardRefusal(f"bitfusion run asks for -p {share:g} of each GPU: {allowed}")


def main(argv: Sequence[str] | None = None) -> int:  # noqa: RET503 (execv does not return)
    """The guard's entry point: check, then exec the real client (returns only on refusal)."""
    argv = list(sys.argv if argv is None else argv)
    real = str(Path(argv[0]).absolute()) + REAL_SUFFIX
    args = argv[1:]
    if args[:1] == ["run"]:
        try:
            limit = GpuSlice.parse(os.environ.get(SLICE_LIMIT_ENV, ""))
        except SliceError:
            print(
                f"bitfusion: refused: {SLICE_LIMIT_ENV} does not hold this pod's slice "
                "(the Bitfusion webhook sets it): run stays closed",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        try:
            check_run(args[1:], limit)
        except GuardRefusal as refusal:
            print(f"bitfusion: refused: {refusal}", file=sys.stderr)
            return EXIT_REFUSED
    os.execv(real, [real, *args])


def stage(target: Path) -> None:
    """Write the guard as an executable zipapp at ``target`` (``#!/usr/bin/env python3``), holding
    this module and the pure slice modules it needs. Raises ``OSError``."""
    package = Path(__file__).resolve().parents[1]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as raw:
        raw.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(
                "__main__.py",
                "import sys\nfrom bf_jupyter.bitfusion.guard import main\nsys.exit(main())\n",
            )
            for name in _PACKAGE_FILES:
                archive.write(package / name, f"bf_jupyter/{name}")
            archive.writestr("bf_jupyter/bitfusion/__init__.py", "")
            archive.write(Path(__file__).resolve(), "bf_jupyter/bitfusion/guard.py")
    mode = stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    partial.chmod(mode)
    partial.replace(target)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stage",
        required=True,
        metavar="PATH",
        help="write the guard here as an executable zipapp (#!/usr/bin/env python3)",
    )


def run(args: argparse.Namespace) -> int:
    """``bf-jupyter slice-guard --stage PATH`` (the webhook's guard init container runs it)."""
    try:
        stage(Path(args.stage))
    except OSError as error:
        print(f"bf-jupyter slice-guard: cannot write {args.stage}: {error}", file=sys.stderr)
        return 1
    return 0
