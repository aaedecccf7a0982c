"""bf-jupyter: fractional, network-attached GPUs (Bitfusion) for Jupyter on Kubernetes.

Importing the package stays cheap: TensorFlow, Kubernetes and gRPC are imported lazily by the
modules that need them. ``%load_ext bf_jupyter`` loads the ``%bitfusion`` magic.
"""

from __future__ import annotations

from typing import Any

from bf_jupyter.version import __version__

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext bf_jupyter``: register the ``%bitfusion`` magics."""
    from bf_jupyter.notebook.magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext bf_jupyter``: remove the ``%bitfusion`` magics."""
    from bf_jupyter.notebook.magic import unload_ipython_extension as unload

    unload(ipython)
