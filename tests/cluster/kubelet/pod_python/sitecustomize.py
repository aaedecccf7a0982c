"""Pod networking for Python processes run by the process-kubelet (see ``node_runtime``).

Pods share this machine's network, each with its own 127.x address (``$BF_TEST_POD_IP``):

- a server that listens on every address (``0.0.0.0``, ``::``, no host) listens on the pod's address
  instead, as it would in its own network namespace, so two pods can both serve port 8443;
- ``<service>.<namespace>.svc`` (and ``….svc.cluster.local``) resolve to the Service's cluster IP,
  read from the JSON table named by ``$BF_TEST_CLUSTER_DNS``; every other name resolves as usual.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

_POD_IP = os.environ.get("BF_TEST_POD_IP", "")
_TABLE = os.environ.get("BF_TEST_CLUSTER_DNS", "")
_WILDCARDS = (None, "", "0.0.0.0", "::")
_resolve = socket.getaddrinfo
_bind = socket.socket.bind


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


def _getaddrinfo(host: Any, port: Any, family: int = 0, *args: Any, **kwargs: Any) -> Any:
    flags = kwargs.get("flags", args[2] if len(args) > 2 else 0)
    if _POD_IP and host in _WILDCARDS and flags & socket.AI_PASSIVE:
        return _resolve(_POD_IP, port, socket.AF_INET, *args[:2])
    address = _cluster_ip(host)
    return _resolve(address if address else host, port, family, *args, **kwargs)


def _bind_to_pod(self: socket.socket, address: Any) -> None:
    if (
        _POD_IP
        and self.family == socket.AF_INET
        and isinstance(address, tuple)
        and address[0] in _WILDCARDS
    ):
        address = (_POD_IP, *address[1:])
    _bind(self, address)


if _TABLE:
    socket.getaddrinfo = _getaddrinfo
if _POD_IP:
    socket.getaddrinfo = _getaddrinfo
    socket.socket.bind = _bind_to_pod  # type: ignore[method-assign,assignment]
