"""The jupyter-server extension: REST API for the GPU pool, the quota and GPU kernels.

Imported by jupyter_server at start-up; the extension class loads lazily so that importing
``bf_jupyter`` elsewhere stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from bf_jupyter.server.app import BitfusionExtension

    return [{"module": "bf_jupyter.server", "app": BitfusionExtension}]
