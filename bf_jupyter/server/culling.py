"""Culling idle GPU kernels: the jupyter_server settings this project recommends, and why.

A kernel holds its GPU slice for as long as it lives, busy or not (Enterprise Gateway's users found
idle kernels keeping GPUs for days, EG #905). jupyter_server can shut idle kernels down, but by
default it never does (``cull_idle_timeout = 0``) and, even when enabled, it spares kernels that
have a browser tab connected (``cull_connected = False``) — exactly the forgotten tab that holds a
GPU overnight (EG #931). The recommendation: cull after an hour idle, check every five minutes,
cull connected kernels too, never cull a busy one (a long training run is not idle).
"""

from __future__ import annotations

from typing import Any

__all__ = ["RECOMMENDED_CULLING", "culling_config"]

RECOMMENDED_CULLING: dict[str, Any] = {
    "cull_idle_timeout": 3600,  # seconds without activity before an idle kernel is shut down
    "cull_interval": 300,  # how often jupyter_server looks
    "cull_connected": True,  # an open but forgotten tab must not keep a GPU slice
    "cull_busy": False,  # a kernel that is computing is working, not idle
}


def culling_config(**overrides: Any) -> Any:
    """A traitlets ``Config`` setting ``MappingKernelManager`` to the recommendation (``overrides``
    replace single values), for ``ServerApp(config=...)`` or to merge into a server's config."""
    from traitlets.config import Config

    config = Config()
    for name, value in {**RECOMMENDED_CULLING, **overrides}.items():
        setattr(config.MappingKernelManager, name, value)
    return config
