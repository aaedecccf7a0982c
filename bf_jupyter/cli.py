"""The ``bf-jupyter`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` and keeps its heavy imports inside ``run``, so ``bf-jupyter --help`` stays fast.
A subcommand that wraps another program (``lab``) sets ``parser.set_defaults(passthrough=True)``:
the options it does not know arrive in ``args.passthrough_args`` instead of being an error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from bf_jupyter.version import __version__

# subcommand → module implementing it (see the module docstring for the protocol).
COMMANDS: dict[str, str] = {
    "webhook": "bf_jupyter.cluster.webhook.command",
    "token-service": "bf_jupyter.cluster.tokenservice.command",
    "token-fetch": "bf_jupyter.cluster.tokenservice.fetch",
    "certs": "bf_jupyter.cluster.certs",
    "device-plugin": "bf_jupyter.cluster.deviceplugin.command",
    "kernelspec": "bf_jupyter.kernels.kernelspec_cli",
    "lab": "bf_jupyter.server.lab_command",
    "pool": "bf_jupyter.bitfusion.pool_command",
    "slice-guard": "bf_jupyter.bitfusion.guard",
    "slice": "bf_jupyter.backends.explain_command",
}


class Subcommand(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bf-jupyter",
        description="Fractional Bitfusion GPUs for Jupyter: JupyterLab, the embedded pool, and the cluster-side daemons.",
        epilog="Run 'bf-jupyter COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"bf-jupyter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = cast("Subcommand", importlib.import_module(module_name))
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.passthrough_args = unknown
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
