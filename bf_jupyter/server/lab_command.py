"""``bf-jupyter lab``: JupyterLab with the GPU slices extension, on the backend you name.

Every option this command does not know goes to JupyterLab unchanged (``--port``, ``--no-browser``,
``--ServerApp.token=...``). Without ``--notebook``, the VGG19 example notebook opens when this is a
checkout that has it, so ``make demo`` lands somewhere useful.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bf_jupyter.server.backend import BACKENDS

HELP = "Start JupyterLab with the GPU slices sidebar (other options go to JupyterLab)"
EXAMPLE_NOTEBOOK = Path("examples/vgg19/vgg19_bitfusion.ipynb")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="where GPU kernels run: local (this machine, the Bitfusion client or bitfusion-sim) "
        "or kubernetes (kernel pods); default: kubernetes inside a pod, else local",
    )
    parser.add_argument(
        "--notebook",
        type=Path,
        help=f"notebook to open first (default: {EXAMPLE_NOTEBOOK} when it exists here)",
    )
    parser.set_defaults(passthrough=True)


def lab_argv(
    *, backend: str | None, notebook: Path | None, passthrough: list[str], cwd: Path
) -> list[str]:
    """JupyterLab's argv: the extension's settings first, so the user's own options win."""
    argv = [f"--BitfusionExtension.backend={backend}"] if backend else []
    chosen = notebook if notebook is not None else cwd / EXAMPLE_NOTEBOOK
    opens_something = any(
        a.startswith(("--LabApp.default_url", "--ServerApp.default_url")) for a in passthrough
    )
    if not opens_something and chosen.is_file():
        root = _root_dir(passthrough) or cwd
        try:
            relative = chosen.resolve().relative_to(root.resolve())
            argv.append(f"--LabApp.default_url=/lab/tree/{relative.as_posix()}")
        except ValueError:
            pass  # outside the server's root: JupyterLab could not open it anyway
    return argv + passthrough


def run(args: argparse.Namespace) -> int:
    from jupyterlab.labapp import LabApp

    argv = lab_argv(
        backend=args.backend,
        notebook=args.notebook,
        passthrough=list(args.passthrough_args),
        cwd=Path.cwd(),
    )
    LabApp.launch_instance(argv=argv)
    return 0


def _root_dir(argv: list[str]) -> Path | None:
    for arg in argv:
        for flag in ("--ServerApp.root_dir=", "--notebook-dir=", "--ServerApp.notebook_dir="):
            if arg.startswith(flag):
                return Path(arg.removeprefix(flag))
    return None
