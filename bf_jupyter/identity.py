"""Who the current user is, for labels and ownership checks: one rule for kernels and the magic.

The JupyterHub user when the server runs under a hub (``$JUPYTERHUB_USER``), else the login name,
else ``unknown`` (a container may run under a uid with no passwd entry). Pure apart from reading
the environment and the passwd database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["HUB_USER_ENV", "current_user"]

HUB_USER_ENV = "JUPYTERHUB_USER"


def current_user(env: Mapping[str, str] | None = None) -> str:
    """The hub user in ``env`` (default: this process's environment), else the login name, else
    ``unknown``; never raises."""
    env = os.environ if env is None else env
    hub_user = env.get(HUB_USER_ENV, "").strip()
    if hub_user:
        return hub_user
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
