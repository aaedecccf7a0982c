"""Reattaching a restarted server to kernels it started before: ``reattach_kernel``.

A remote kernel outlives the server process that launched it. jupyter_client has the two halves —
``provisioner.get_provisioner_info()`` (JSON, stored by whoever persists kernels, e.g. the server
extension) and ``load_provisioner_info()`` — but nothing that rebuilds a ``KernelManager`` from the
stored dict. This does, for any provisioner that persists itself (both Bitfusion ones do).
The stored info holds the kernel's HMAC key: keep it as private as a connection file (mode 0600).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bf_jupyter.contract import ENV_SLICE

__all__ = ["reattach_kernel"]


async def reattach_kernel(kernel_manager: Any, provisioner_info: Mapping[str, Any]) -> None:
    """Make ``kernel_manager`` (created with the kernel's ``kernel_name``, not started) manage the
    running kernel ``provisioner_info`` describes: its provisioner follows the kernel again, its
    connection info is loaded (clients connect as before) and restart/shutdown work as for a kernel
    it launched. Raises ``KeyError`` when the info lacks the kernel id or connection info.
    """
    from jupyter_client.provisioning.factory import KernelProvisionerFactory

    info = dict(provisioner_info)
    kernel_id = str(info["kernel_id"])
    kernel_manager.kernel_id = kernel_id
    provisioner = KernelProvisionerFactory.instance(
        parent=kernel_manager.parent
    ).create_provisioner_instance(kernel_id, kernel_manager.kernel_spec, parent=kernel_manager)
    await provisioner.load_provisioner_info(info)
    kernel_manager.provisioner = provisioner
    kernel_manager.load_connection_info(provisioner.connection_info)
    kernel_manager.write_connection_file()
    # What a restart relaunches with: the same slice.
    gpu_slice = info.get("gpu_slice")
    kernel_manager._launch_args = {"env": {ENV_SLICE: gpu_slice}} if gpu_slice else {}
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ready.set_result(None)
    kernel_manager._ready = ready
    kernel_manager._attempted_start = True  # later restarts and shutdowns make fresh futures
    kernel_manager._connect_control_socket()
    kernel_manager.start_restarter()
