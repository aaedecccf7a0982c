"""Cluster DNS for Python processes in the process-kubelet's pods (see ``node_runtime``).

``<service>.<namespace>.svc`` (and ``….svc.cluster.local``) resolve to the Service's cluster IP read
from the JSON table named by ``$BF_TEST_CLUSTER_DNS``; every other name resolves as usual.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

_TABLE = os.environ.get("BF_TEST_CLUSTER_DNS", "")
_resolve = socket.getaddrinfo


def _cluster_ip(host: object) -> str | None:
    if not _TABLE or not isinstance(host, str):
        return None
    name = host.rstrip(".").removesuffix(".cluster.local")
    if not name.endswith(".svc"):
        return None
    try:
        with open(_TABLE, encoding="utf-8") as table:
            found = json.load(table).get(name)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, str) else None


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    address = _cluster_ip(host)
    return _resolve(address if address else host, *args, **kwargs)


if _TABLE:
    socket.getaddrinfo = _getaddrinfo
