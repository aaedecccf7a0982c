"""Readiness probes as a kubelet runs them: ``httpGet`` (HTTP or HTTPS, certificate not verified,
2xx/3xx is success), ``tcpSocket`` (the port accepts) and ``exec`` (taken as passed: a process has
no container to exec into). Until a container's first success it is not Ready; the kube-proxy
stand-in sends no traffic to it. Probes run every ``PERIOD`` seconds until then, faster than
``periodSeconds`` so tests wait for the server, not for the probe."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

Obj = dict[str, Any]
PERIOD = 0.1
TIMEOUT = 1.0


def probe_port(port: object, container: Obj) -> int | None:
    """A probe's ``port``: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


async def probe_once(probe: Obj, host: str, container: Obj) -> bool:
    if "exec" in probe:
        return True
    action = probe.get("httpGet") or probe.get("tcpSocket")
    port = probe_port(action.get("port"), container) if isinstance(action, dict) else None
    if not isinstance(action, dict) or port is None:
        return not isinstance(action, dict)  # no action to run passes; an unknown port fails
    tls: ssl.SSLContext | None = None
    if "httpGet" in probe and str(action.get("scheme", "HTTP")).upper() == "HTTPS":
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls), TIMEOUT
        )
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        return False
    try:
        if "tcpSocket" in probe:
            return True
        path = str(action.get("path", "/"))
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.37\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        parts = status_line.split()
        return len(parts) >= 2 and parts[1][:1] in (b"2", b"3")
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


async def wait_until_ready(probe: Obj, host: str, container: Obj) -> None:
    """Returns at the probe's first success (the caller cancels it when the container ends)."""
    while not await probe_once(probe, host, container):
        await asyncio.sleep(PERIOD)
