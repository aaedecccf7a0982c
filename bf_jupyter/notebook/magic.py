"""The ``%bitfusion`` line magic and ``%%bitfusion`` cell magic (``%load_ext bf_jupyter``), also
as ``%gpu`` / ``%%gpu``.

Thin: parse (``magic_args``), call one function (``local_commands`` or ``cluster_commands``), and
turn every expected failure into a one-line ``MagicError`` that IPython prints without a
traceback. Loading the extension imports nothing heavy (no widget, numpy, Keras or Kubernetes
client until a subcommand needs it).

Settings (``%config BitfusionMagics.namespace = "ml"`` or in ``ipython_kernel_config.py``):
``namespace`` for the cluster subcommands and ``stop_grace`` for interrupted runs.
"""

from __future__ import annotations

import logging
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Float, Unicode

from bf_jupyter.notebook.magic_args import (
    HelpRequested,
    MagicError,
    ParsedLine,
    parse_cell_line,
    parse_line,
)

__all__ = ["BitfusionMagics", "load_ipython_extension", "unload_ipython_extension"]

_log = logging.getLogger(__name__)


@magics_class
class BitfusionMagics(Magics):
    """``%bitfusion`` — run work on fractional GPU slices from a notebook."""

    namespace = Unicode(
        "",
        help="Kubernetes namespace for submit, jobs, logs, cancel and the quota in status; "
        "empty means the kernel's own (its pod's namespace in a cluster, else the kubeconfig context's).",
    ).tag(config=True)
    stop_grace = Float(
        5.0,
        help="Seconds an interrupted run gets after SIGINT before SIGTERM, and after SIGTERM before SIGKILL.",
    ).tag(config=True)

    @line_cell_magic
    def bitfusion(self, line: str = "", cell: str | None = None) -> None:
        """Run work on fractional GPU slices (Bitfusion). ``%bitfusion --help`` for an overview."""
        try:
            if cell is None:
                self._line(parse_line(line))
            else:
                parsed = parse_cell_line(line)
                assert parsed.gpu_slice is not None
                from bf_jupyter.notebook.local_commands import run_cell

                run_cell(parsed.gpu_slice, cell, wait=parsed.options.wait, grace=self.stop_grace)
        except HelpRequested as request:
            print(request.text)
        except MagicError:
            raise
        except Exception as error:  # a failure we did not foresee: still one line, details logged
            _log.debug("%%bitfusion %s failed", line, exc_info=True)
            subcommand = "cell" if cell is not None else (line.split() or [""])[0]
            raise MagicError(
                subcommand, f"failed unexpectedly ({type(error).__name__}: {error})"
            ) from None

    def _line(self, parsed: ParsedLine) -> None:
        if parsed.subcommand == "status":
            self._status(parsed)
        elif parsed.subcommand == "smi":
            from bf_jupyter.notebook.local_commands import show_smi

            show_smi()
        elif parsed.subcommand == "run":
            from bf_jupyter.notebook.local_commands import run_on_slice

            assert parsed.gpu_slice is not None
            run_on_slice(
                "run",
                parsed.gpu_slice,
                parsed.command,
                wait=parsed.options.wait,
                grace=self.stop_grace,
            )
        else:
            self._cluster().run(parsed)

    def _status(self, parsed: ParsedLine) -> None:
        from bf_jupyter.notebook.local_commands import kernel_slice_line, pool_line

        client, pool = pool_line()
        namespace, quota = self._cluster().quota_line(parsed.options.namespace)
        rows = [
            ("Kernel slice", kernel_slice_line()),
            ("Client", client),
            ("Pool", pool),
            (f"Quota ({namespace})" if namespace != "-" else "Quota", quota),
        ]
        width = max(len(label) for label, _ in rows)
        print("\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in rows))

    def _cluster(self) -> Any:
        from bf_jupyter.notebook.cluster_commands import ClusterCommands

        return ClusterCommands(namespace=self.namespace)


NEUTRAL_ALIAS = "gpu"  # %gpu / %%gpu: the same magic, named for any GPU backend


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with an IPython shell (``%load_ext bf_jupyter``): ``%bitfusion`` and
    its backend-neutral alias ``%gpu`` (unless the shell already has a ``%gpu`` of its own); in a
    kernel, also answer the server's GPU meter on the control channel (``kernels.gpu_report``)."""
    ipython.register_magics(BitfusionMagics)
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        if NEUTRAL_ALIAS not in manager.magics[kind]:
            manager.register_alias(NEUTRAL_ALIAS, "bitfusion", kind)
    kernel = getattr(ipython, "kernel", None)
    if kernel is not None and hasattr(kernel, "control_handlers"):
        from bf_jupyter.kernels.gpu_report import install_gpu_report

        install_gpu_report(kernel)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics again (``%unload_ext bf_jupyter``)."""
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("bitfusion", None)
        alias = manager.magics[kind].get(NEUTRAL_ALIAS)
        if getattr(alias, "magic_name", None) == "bitfusion":  # ours, not the user's own %gpu
            manager.magics[kind].pop(NEUTRAL_ALIAS, None)
    manager.registry.pop(BitfusionMagics.__name__, None)
