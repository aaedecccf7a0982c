"""REST handlers under ``{base_url}/bitfusion/api/``: parse, call the service once, write JSON.

Every verb is ``@web.authenticated`` (token or login cookie; jupyter_server adds XSRF checks to
cookie-authenticated writes) and ``@authorized`` on the ``kernels`` resource, since all of this
starts, stops or sizes kernels. ``tests/integration/server`` fails if a handler is not.
The responses are described in ``openapi.yaml`` beside this file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from bf_jupyter.kernels.progress import PROGRESS, ProgressEvent
from bf_jupyter.server.errors import ApiError

if TYPE_CHECKING:
    from bf_jupyter.server.service import GpuService

__all__ = ["API_PREFIX", "SERVICE_SETTING", "default_handlers"]

API_PREFIX = "bitfusion/api"
SERVICE_SETTING = "bf_jupyter_service"
AUTH_RESOURCE = "kernels"
_HEARTBEAT = 15.0  # seconds between keep-alive comments on a quiet event stream


class BitfusionApiHandler(APIHandler):
    """Base: the service, and errors as ``{"message", "field"?}``."""

    auth_resource = AUTH_RESOURCE

    @property
    def service(self) -> GpuService:
        return cast("GpuService", self.settings[SERVICE_SETTING])

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ApiError):
            self.set_header("Content-Type", "application/json")
            body: dict[str, Any] = {"message": error.message}
            if error.field:
                body["field"] = error.field
            self.finish(json.dumps(body))
            return
        super().write_error(status_code, **kwargs)

    def write_json(self, payload: Any, *, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload))


class InfoHandler(BitfusionApiHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.service.describe())


class PoolHandler(BitfusionApiHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.service.pool())


class QuotaHandler(BitfusionApiHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.service.quota())


class PriceHandler(BitfusionApiHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        text = self.get_query_argument("slice", "")
        if not text.strip():
            raise ApiError(400, "slice is missing: ask e.g. price?slice=1x50%", field="slice")
        backend = self.get_query_argument("backend", "")
        self.write_json(await self.service.price_on(text, backend))


class KernelsHandler(BitfusionApiHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.service.kernels.listing())

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise ApiError(400, 'The body must be a JSON object such as {"slice": "1x50%"}')
        launched = await self.service.launch(body)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + launched["id"])
        self.write_json(launched, status=202)


class KernelHandler(BitfusionApiHandler):
    @web.authenticated
    @authorized
    async def delete(self, kernel_id: str) -> None:
        gone = await self.service.kernels.stop(kernel_id)
        self.set_status(204 if gone else 202)
        self.finish()


class KernelEventsHandler(BitfusionApiHandler):
    """Server-sent events: the kernel's start-up progress, replayed then live, until ready/failed."""

    _closed: asyncio.Event

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str) -> None:
        if not self.service.kernels.known(kernel_id):
            raise ApiError(404, f"No start-up events for kernel {kernel_id} on this server")
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies must pass events through as they come
        self._closed = asyncio.Event()
        events = cast("AsyncGenerator[ProgressEvent, None]", PROGRESS.follow(kernel_id))
        try:
            while (event := await self._next(events)) is not None:
                if event.final:
                    event = await self._settle(event)
                self.write(f"event: {event.stage}\ndata: {json.dumps(event.to_json())}\n\n")
                await self.flush()
        except StreamClosedError:
            return  # the tab went away
        finally:
            await events.aclose()  # unsubscribes from the bus
        if not self._closed.is_set():
            self.finish(set_content_type="text/event-stream")

    def on_connection_close(self) -> None:
        self._closed.set()

    async def _settle(self, final: ProgressEvent) -> ProgressEvent:
        """The last event, sent once the launch has settled: ``ready`` when the kernel can be
        opened (else it becomes a failure), ``failed`` once what the start created is gone and
        ``GET kernels`` lists it as failed. A provisioner announces both a moment earlier."""
        reason = await self.service.kernels.settled(final.kernel_id)
        if final.stage != "ready" or reason is None:
            return final
        return ProgressEvent(final.kernel_id, "failed", reason)

    async def _next(self, events: AsyncGenerator[ProgressEvent, None]) -> ProgressEvent | None:
        """The next event; None when the stream ended or the client left. A comment line every
        ``_HEARTBEAT`` seconds keeps proxies from closing a quiet stream."""
        upcoming = asyncio.ensure_future(anext(events))
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {upcoming, closed}, timeout=_HEARTBEAT, return_when=asyncio.FIRST_COMPLETED
                )
                if upcoming in done:
                    try:
                        return upcoming.result()
                    except StopAsyncIteration:
                        return None
                if closed in done:
                    return None
                self.write(": still starting\n\n")
                await self.flush()
        finally:
            closed.cancel()
            if not upcoming.done():
                upcoming.cancel()


_KERNEL_ID = r"(?P<kernel_id>[\w-]+)"
default_handlers: list[tuple[str, type[BitfusionApiHandler]]] = [
    (rf"/{API_PREFIX}/info", InfoHandler),
    (rf"/{API_PREFIX}/pool", PoolHandler),
    (rf"/{API_PREFIX}/quota", QuotaHandler),
    (rf"/{API_PREFIX}/price", PriceHandler),
    (rf"/{API_PREFIX}/kernels", KernelsHandler),
    (rf"/{API_PREFIX}/kernels/{_KERNEL_ID}", KernelHandler),
    (rf"/{API_PREFIX}/kernels/{_KERNEL_ID}/events", KernelEventsHandler),
]
