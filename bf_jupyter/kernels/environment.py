"""Which environment variables a remote kernel gets: an allow-list, never the server's environment.

jupyter_server hands a provisioner the whole server environment plus the launch's own variables
(``SessionManager.get_kernel_env`` copies ``os.environ``). Copying that into a pod spec publishes the
server's tokens to anyone who may read pods (Enterprise Gateway's mistake). A remote kernel gets:

- the kernelspec's own ``env`` entries;
- ``KERNEL_*`` and ``BF_*`` variables and ``JPY_SESSION_NAME`` that the launch *added or changed*
  (the same name with the same value in the server's environment is the server's, not the launch's);
- variables whose names match a configured pattern (the operator's explicit choice);
- configured extra values, which win.

Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

__all__ = ["LAUNCH_PREFIXES", "kernel_environment"]

LAUNCH_PREFIXES = ("KERNEL_", "BF_")
_LAUNCH_NAMES = frozenset({"JPY_SESSION_NAME"})


def kernel_environment(
    launch_env: Mapping[str, str],
    *,
    server_env: Mapping[str, str],
    kernelspec_names: Iterable[str] = (),
    allowed_patterns: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables a remote kernel may see, chosen from ``launch_env`` by the rules above.

    ``server_env`` is the server process's own environment (``os.environ``); ``allowed_patterns``
    are shell-style name patterns (``MY_*``); ``extra`` adds or overrides values. Never raises.
    """
    own = set(kernelspec_names)
    patterns = [p for p in allowed_patterns if p]
    chosen: dict[str, str] = {}
    for name, value in launch_env.items():
        from_launch = server_env.get(name) != value
        if (
            name in own
            or any(fnmatch.fnmatchcase(name, p) for p in patterns)
            or (from_launch and (name.startswith(LAUNCH_PREFIXES) or name in _LAUNCH_NAMES))
        ):
            chosen[name] = str(value)
    chosen.update(extra or {})
    return chosen
