"""What both Bitfusion provisioners share: the slice a launch gets, progress events, the restart flag.

The per-launch hook: whoever starts a kernel passes ``env={"BF_SLICE": "<slice text>"}`` to
``KernelManager.start_kernel`` (the server extension does, from the picker); without it the
kernelspec's ``default_slice`` (its provisioner ``config``) applies. The text is validated by the
slice contract before anything is created, so a bad slice costs nothing and says what is accepted.

jupyter_client does not always pass ``restart=True`` down to ``terminate``/``kill`` (its issue
#1061), so the flag is remembered from ``shutdown_requested`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from traitlets import Float, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from bf_jupyter.contract import ENV_SLICE
from bf_jupyter.identity import current_user
from bf_jupyter.kernels.progress import PROGRESS, Stage
from bf_jupyter.slice import GpuSlice, SliceError

__all__ = [
    "LAUNCH_GATE_ATTRIBUTE",
    "USER_ENV",
    "KernelLaunchError",
    "LaunchGate",
    "SlicedKernelMixin",
]

USER_ENV = "KERNEL_USERNAME"
DEFAULT_SLICE = "1x50%"
# The attribute of the server's kernel manager (a provisioner's parent's parent) that holds the
# quota gate; the server extension sets it, so every start passes it, however it was asked for.
LAUNCH_GATE_ATTRIBUTE = "bf_launch_gate"


class LaunchGate(Protocol):
    """What admits a kernel's slice against the server's quota before anything is started."""

    async def admit(self, kernel_id: str, gpu_slice: GpuSlice) -> None:
        """Hold the slice's units for ``kernel_id``, or raise an error whose ``message`` (or
        text) says why not (over quota, or a slice that cannot be priced)."""

    def release(self, kernel_id: str) -> None:
        """The kernel ended or never started: its units are free again."""


class KernelLaunchError(RuntimeError):
    """A kernel could not be started; the message is one sentence saying why (already published as
    the kernel's final ``failed`` progress event), and nothing the launch created is left behind."""


class SlicedKernelMixin(LoggingConfigurable):
    """Slice selection, progress publishing and restart bookkeeping for a kernel provisioner."""

    default_slice = Unicode(
        DEFAULT_SLICE,
        help="The GPU slice a kernel gets when its launch does not choose one with the BF_SLICE "
        "environment variable: N, NxP% or NxMEMORY (e.g. 1, 1x50%, 2x8Gi), optionally followed by "
        "Bitfusion filters (device.name=V100).",
    ).tag(config=True)

    launch_timeout = Float(
        120.0,
        help="Seconds a kernel may take from launch to its first kernel_info_reply (locking the "
        "slice and, for a pod, pulling its image included) before the launch fails and everything "
        "it started is stopped; a failure the backend reports ends it at once. Default 120 for "
        "local kernels, 300 for kernels in pods. It bounds the launch; "
        "BitfusionExtension.launch_timeout only bounds the server's wait after it.",
    ).tag(config=True)

    @validate("default_slice")
    def _check_default_slice(self, proposal: dict[str, Any]) -> str:
        try:
            return GpuSlice.parse(proposal["value"]).to_text()
        except SliceError as error:
            raise TraitError(f"default_slice: {error}") from None

    kernel_id: Any  # the provisioner's trait (declared by KernelProvisionerBase)
    # The slice and pod of the running kernel; the server extension lists kernels with them.
    gpu_slice: GpuSlice | None = None
    pod_name: str | None = None
    _restart_requested: bool = False

    def choose_slice(self, env: Mapping[str, str] | None) -> GpuSlice:
        """The launch's slice: ``BF_SLICE`` from its environment, else ``default_slice``. Starts the
        kernel's progress anew (a restart's followers must not stop at the previous start's end).

        Raises ``KernelLaunchError`` (after publishing ``failed``) naming the bad part of the slice.
        """
        if self.kernel_id:
            PROGRESS.begin(str(self.kernel_id))
        text = (env or {}).get(ENV_SLICE, "").strip()
        source = ENV_SLICE if text else "default_slice"
        try:
            chosen = GpuSlice.parse(text or self.default_slice)
        except SliceError as error:
            raise self.launch_failed(f"The GPU slice in {source} was refused: {error}.") from None
        self.gpu_slice = chosen
        return chosen

    async def admit_slice(self, gpu_slice: GpuSlice) -> None:
        """Pass the server's quota gate, when the server has one (the bf-jupyter extension sets
        it): launches through the stock ``/api/kernels`` and ``/api/sessions`` count as well.
        Raises the gate's refusal as it is (an HTTP error keeps its status), after publishing it."""
        gate = self._launch_gate()
        if gate is None:
            return
        try:
            await gate.admit(str(self.kernel_id), gpu_slice)
        except Exception as refusal:
            self.publish("failed", str(getattr(refusal, "message", "") or refusal))
            raise

    def release_slice(self) -> None:
        """Give the quota gate back this kernel's units (it ended, or did not start)."""
        gate = self._launch_gate()
        if gate is not None and self.kernel_id:
            gate.release(str(self.kernel_id))

    def _launch_gate(self) -> LaunchGate | None:
        kernel_manager = getattr(self, "parent", None)
        server_kernels = getattr(kernel_manager, "parent", None)
        gate = getattr(server_kernels, LAUNCH_GATE_ATTRIBUTE, None)
        return gate if callable(getattr(gate, "admit", None)) else None

    def kernel_user(self, env: Mapping[str, str] | None) -> str:
        """Who the kernel belongs to: ``KERNEL_USERNAME`` of the launch, else the server's user
        (``identity.current_user``: the hub user, else the login name)."""
        launch = (env or {}).get(USER_ENV, "").strip()
        return launch or current_user()

    def publish(self, stage: Stage, message: str) -> None:
        """One start-up progress event for this kernel (relayed to the browser by the server)."""
        if self.kernel_id:
            PROGRESS.publish(str(self.kernel_id), stage, message)
        log = self.log.warning if stage == "failed" else self.log.info
        log("kernel %s: %s", self.kernel_id, message)

    def launch_failed(self, message: str) -> KernelLaunchError:
        """Publish the final ``failed`` event and return the error to raise."""
        self.publish("failed", message)
        return KernelLaunchError(message)

    def note_shutdown_requested(self, restart: bool) -> None:
        self._restart_requested = restart

    async def shutdown_requested(self, restart: bool = False) -> None:
        """jupyter_client says a shutdown (or, with ``restart``, a restart) is coming."""
        self.note_shutdown_requested(restart)

    def take_restart_flag(self, restart: bool) -> bool:
        """``restart`` as the caller said it, or as ``shutdown_requested`` said it earlier."""
        return restart or self._restart_requested

    def clear_restart_flag(self) -> None:
        self._restart_requested = False

    def slice_info(self) -> dict[str, Any]:
        return {
            "gpu_slice": self.gpu_slice.to_text() if self.gpu_slice else None,
            "pod_name": self.pod_name,
        }

    def restore_slice_info(self, info: Mapping[str, Any]) -> None:
        text = info.get("gpu_slice")
        self.gpu_slice = GpuSlice.parse(text) if text else None
        self.pod_name = info.get("pod_name")
