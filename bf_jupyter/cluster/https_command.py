"""The command-line side the HTTPS cluster daemons share (``bf-jupyter webhook``, ``bf-jupyter
token-service``): the listening and lifecycle flags, logging, and ``serve_until_signalled``, which on
SIGTERM or SIGINT turns ``/readyz`` to 503 for the drain time, then closes. Imports no tornado: the
CLI imports every command module to build its parser.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "Serving",
    "add_lifecycle_arguments",
    "add_listening_arguments",
    "configure_logging",
    "serve_until_signalled",
]


def add_listening_arguments(parser: argparse.ArgumentParser) -> None:
    """``--port``, ``--address``, ``--tls-cert`` and ``--tls-key``."""
    parser.add_argument("--port", type=int, default=8443, help="TCP port to listen on (8443)")
    parser.add_argument(
        "--address", default="", help="address to bind (default: all IPv4 addresses)"
    )
    parser.add_argument(
        "--tls-cert", required=True, metavar="FILE", help="PEM serving certificate (chain)"
    )
    parser.add_argument("--tls-key", required=True, metavar="FILE", help="PEM private key")


def add_lifecycle_arguments(parser: argparse.ArgumentParser) -> None:
    """``--drain-seconds`` and ``--log-level``."""
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="on SIGTERM, report not-ready this long before closing (5)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class Serving(Protocol):
    """What ``serve_until_signalled`` runs: a server with a draining flag, ``start`` and ``stop``."""

    @property
    def draining(self) -> asyncio.Event: ...

    async def start(self) -> int: ...

    async def stop(self, *, grace_seconds: float = 5.0) -> None: ...


def serve_until_signalled(
    server: Serving,
    *,
    program: str,
    port: int,
    drain_seconds: float,
    log: logging.Logger,
    on_listening: Callable[[int], None],
) -> int:
    """Run ``server`` until SIGTERM or SIGINT, then report not-ready for ``drain_seconds`` and
    close; ``on_listening(bound_port)`` runs once it listens. Returns the exit status: 0, or 1
    (after a message naming ``program`` and the port) when it cannot listen."""
    try:
        asyncio.run(_serve(server, drain_seconds=drain_seconds, log=log, on_listening=on_listening))
    except OSError as error:
        print(f"{program}: cannot listen on port {port}: {error}", file=sys.stderr)
        return 1
    return 0


async def _serve(
    server: Serving,
    *,
    drain_seconds: float,
    log: logging.Logger,
    on_listening: Callable[[int], None],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    on_listening(await server.start())
    try:
        await stop.wait()
        server.draining.set()
        log.info("stopping: not ready for %.1f s, then closing", drain_seconds)
        await asyncio.sleep(drain_seconds)
    finally:
        await server.stop()
