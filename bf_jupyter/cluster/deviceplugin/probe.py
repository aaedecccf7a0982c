"""Asking the real pool what to advertise: ``list_gpus`` for capacity, ``health`` for health.

Both go through the client adapter (``resolve_client``), the same client every other part of the
project uses, so the node advertises exactly the pool that ``bitfusion run`` will draw from. The
adapter blocks (it runs the client as a subprocess); ``probe_in_thread`` runs one probe in a
short-lived thread of its own that is joined before the answer is returned, so stopping the plugin
leaves no thread behind and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from bf_jupyter.bitfusion.client import BitfusionClient, BitfusionClientError, resolve_client
from bf_jupyter.cluster.deviceplugin.inventory import (
    Advertisement,
    advertise,
    advertise_unreachable,
)

__all__ = ["PoolProbe", "run_in_own_thread"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_JOIN_SECONDS = 1.0


class PoolProbe:
    """Turns one ``list_gpus`` + ``health`` round into an ``Advertisement``. Never raises for a
    client problem: a client that cannot be found, fails or times out yields an unhealthy list."""

    def __init__(
        self,
        *,
        units_per_gpu: int,
        timeout: float,
        resolve: Callable[[], BitfusionClient] = resolve_client,
    ) -> None:
        self.units_per_gpu = units_per_gpu
        self.timeout = timeout
        self._resolve = resolve

    def __call__(self, previous: Advertisement | None) -> Advertisement:
        """Blocking: the pool now. ``previous`` supplies the devices to keep when listing fails."""
        try:
            # Resolved every time so that a client installed (or fixed) later is picked up.
            client = self._resolve()
            listing = client.list_gpus(timeout=self.timeout)
        except BitfusionClientError as error:
            return advertise_unreachable(previous, str(error), units_per_gpu=self.units_per_gpu)
        if listing.simulated and (previous is None or not previous.gpus):
            log.warning("the Bitfusion client reports a simulated pool: %s", client.describe())
        return advertise(
            listing, client.health(timeout=self.timeout), units_per_gpu=self.units_per_gpu
        )


async def run_in_own_thread(function: Callable[[], T], *, name: str) -> T:
    """Run blocking ``function`` in a new thread named ``name`` and return (or raise) its result.

    Unlike ``asyncio.to_thread`` the thread is not pooled: it is joined before this returns, so
    nothing outlives the caller. If the caller is cancelled, the thread is still waited for
    (shielded) before the cancellation propagates, so a stopped plugin has no thread left.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def succeed(result: T) -> None:
        if not done.cancelled():
            done.set_result(result)

    def fail(error: BaseException) -> None:
        if not done.cancelled():
            done.set_exception(error)

    def work() -> None:
        try:
            result = function()
        except BaseException as error:  # handed to the awaiting coroutine, not lost in the thread
            loop.call_soon_threadsafe(fail, error)
        else:
            loop.call_soon_threadsafe(succeed, result)

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        # Wait for the blocking call to end (the adapter's own timeout bounds it) before giving up.
        await asyncio.wait({done})
        done.exception()  # retrieved: the caller is gone, so its outcome is dropped on purpose
        raise
    finally:
        # The thread's last act was scheduling the callback above: joining it now is immediate.
        thread.join(timeout=_JOIN_SECONDS)
