"""Kernel side: the ``%bitfusion`` magic, the live-curve widget and its Keras callback.

Runs inside kernels, so it never imports the server side, and importing it is cheap: the widget,
numpy, Keras and the Kubernetes client load only when a subcommand or the callback needs them.

A kernel loads the magic at start-up when its argv carries ``EXTENSION_ARGS`` (IPython's
``--ext``), as ``kernel_argv()`` does; ``c.InteractiveShellApp.extensions = ["bf_jupyter"]`` in
``ipython_kernel_config.py`` works too.
"""

from __future__ import annotations

import sys

__all__ = ["EXTENSION_ARGS", "kernel_argv"]

# Arguments that make an IPython kernel load the extension (and so ``%bitfusion``) at start-up.
EXTENSION_ARGS = ("--ext", "bf_jupyter")


def kernel_argv(python: str = sys.executable) -> list[str]:
    """A kernelspec ``argv`` for an IPython kernel with the extension loaded (jupyter_client fills
    in ``{connection_file}``)."""
    return [python, "-m", "ipykernel_launcher", "-f", "{connection_file}", *EXTENSION_ARGS]
