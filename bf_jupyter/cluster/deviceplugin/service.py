"""The DevicePlugin gRPC service the kubelet calls, over the plugin's current device list.

``DeviceBoard`` holds that list and wakes ListAndWatch streams only when it changes, so the kubelet
gets the full list once, then the full list again after each capacity or health change, never a
periodic resend. The service answers from the board and ``allocation``; it holds no other state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from bf_jupyter.cluster.deviceplugin import api_pb2
from bf_jupyter.cluster.deviceplugin.allocation import allocation_envs, preferred_allocation

if TYPE_CHECKING:
    from bf_jupyter.cluster.deviceplugin.inventory import Advertisement

__all__ = ["DeviceBoard", "DevicePluginService", "plugin_options"]

log = logging.getLogger(__name__)
Context = Any  # grpc.aio.ServicerContext: grpcio ships no type hints


class DeviceBoard:
    """The latest advertisement, and a way for each stream to await the next change."""

    def __init__(self, initial: Advertisement) -> None:
        self._current = initial
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def current(self) -> Advertisement:
        return self._current

    def publish(self, advertisement: Advertisement) -> bool:
        """Make ``advertisement`` current; True (and watchers woken) only when the list changed."""
        if self._closed:
            return False
        changed = advertisement != self._current
        self._current = advertisement  # the newest reason, even when the list itself is unchanged
        if changed:
            self._wake()
        return changed

    async def watch(self) -> AsyncIterator[Advertisement]:
        """The current list, then the newest list after each change, until ``close``."""
        while not self._closed:
            changed = self._changed
            yield self._current
            await changed.wait()

    def close(self) -> None:
        """End every ``watch``; later publishes are ignored."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def plugin_options() -> api_pb2.DevicePluginOptions:
    """What this plugin offers beyond the mandatory calls (sent at registration and on request)."""
    return api_pb2.DevicePluginOptions(
        pre_start_required=False, get_preferred_allocation_available=True
    )


class DevicePluginService:
    """``v1beta1.DevicePlugin`` for grpc.aio (registered with ``add_DevicePluginServicer_to_server``)."""

    def __init__(self, board: DeviceBoard, *, resource_name: str) -> None:
        self._board = board
        self._resource_name = resource_name

    async def GetDevicePluginOptions(
        self, request: api_pb2.Empty, context: Context
    ) -> api_pb2.DevicePluginOptions:
        return plugin_options()

    async def ListAndWatch(
        self, request: api_pb2.Empty, context: Context
    ) -> AsyncIterator[api_pb2.ListAndWatchResponse]:
        log.info("%s: the kubelet is watching the device list", self._resource_name)
        async for advertisement in self._board.watch():
            devices = [
                api_pb2.Device(ID=device_id, health=advertisement.health)
                for device_id in advertisement.device_ids()
            ]
            yield api_pb2.ListAndWatchResponse(devices=devices)

    async def GetPreferredAllocation(
        self, request: api_pb2.PreferredAllocationRequest, context: Context
    ) -> api_pb2.PreferredAllocationResponse:
        responses = [
            api_pb2.ContainerPreferredAllocationResponse(
                deviceIDs=preferred_allocation(
                    available=list(container.available_deviceIDs),
                    must_include=list(container.must_include_deviceIDs),
                    size=container.allocation_size,
                )
            )
            for container in request.container_requests
        ]
        return api_pb2.PreferredAllocationResponse(container_responses=responses)

    async def Allocate(
        self, request: api_pb2.AllocateRequest, context: Context
    ) -> api_pb2.AllocateResponse:
        current = self._board.current
        responses = []
        for container in request.container_requests:
            unknown = [d for d in container.devices_ids if not current.holds(d)]
            if unknown:
                shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
                message = (
                    f"{self._resource_name}: cannot allocate {len(unknown)} device(s) this plugin "
                    f"does not advertise ({shown}); it advertises {current.describe()}"
                )
                log.warning("Allocate refused: %s", message)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
            envs = allocation_envs(container.devices_ids)
            log.info("%s: allocated %s", self._resource_name, envs)
            responses.append(api_pb2.ContainerAllocateResponse(envs=envs))
        return api_pb2.AllocateResponse(container_responses=responses)

    async def PreStartContainer(
        self, request: api_pb2.PreStartContainerRequest, context: Context
    ) -> api_pb2.PreStartContainerResponse:
        # Not requested in the options; answered anyway, as the API asks of every plugin.
        return api_pb2.PreStartContainerResponse()
