"""The jupyter-server extension: its settings (traits) and the REST API it adds.

Enabled by ``pip install`` (``jupyter_server_config.d/bf_jupyter.json``). Configure it as
``c.BitfusionExtension.<setting>`` in a Jupyter config file or ``--BitfusionExtension.<setting>=``
on the command line; ``bf-jupyter lab --backend ...`` sets the backend for you.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Int, List, Unicode, default, validate
from traitlets.utils.importstring import import_item

from bf_jupyter.kernels.encryption import encryption_policy
from bf_jupyter.kernels.sliced_kernel import LAUNCH_GATE_ATTRIBUTE
from bf_jupyter.server.backend import BACKENDS, Backend, detect_backend, pod_namespace
from bf_jupyter.server.gpu_idle import IDLE_ACTIONS, IdlePolicy
from bf_jupyter.server.handlers import SERVICE_SETTING, default_handlers
from bf_jupyter.server.quota import parse_memory_setting
from bf_jupyter.server.service import GpuService

__all__ = ["BitfusionExtension"]


class BitfusionExtension(ExtensionApp):
    """GPU slices for Jupyter: pool, quota and GPU-kernel REST API under ``/bitfusion/api/``."""

    name = "bf_jupyter"
    description = __doc__ or ""
    load_other_extensions = True

    backend = Unicode(
        "",
        help="Where GPU kernels run: 'local' (this machine, wrapped by the Bitfusion client or "
        "bitfusion-sim) or 'kubernetes' (kernel pods). Empty: 'kubernetes' when this server runs "
        "in a pod with a service account, else 'local'.",
    ).tag(config=True)

    namespace = Unicode(
        "",
        help="Kubernetes namespace whose GPU quota applies and where kernel pods run (kubernetes "
        "backend). Empty: the namespace of the pod this server runs in, else 'default'. Never taken "
        "from a request.",
    ).tag(config=True)

    cache_ttl = Float(
        5.0,
        min=0.0,
        help="Seconds a pool or quota reading is reused: every open tab shares one backend call "
        "per interval, so many tabs cannot flood the Bitfusion client or the API server.",
    ).tag(config=True)

    launch_timeout = Float(
        300.0,
        min=1.0,
        help="Seconds the server waits for a started GPU kernel to answer before the launch fails "
        "with that reason. The launch itself (pod or process until its first reply) is bounded "
        "first by the provisioner's own launch_timeout (RemoteKernelProvisioner: 300 s, "
        "BitfusionLocalProvisioner: 120 s); this one covers provisioners without one.",
    ).tag(config=True)

    local_quota_units = Int(
        None,
        allow_none=True,
        min=0,
        help="Local backend: the most bitfusion.io/gpu units (100 = one GPU) this server's GPU "
        "kernels may hold together. None: no limit.",
    ).tag(config=True)

    per_gpu_memory = Unicode(
        "",
        help="Memory of one GPU (e.g. '16Gi'), to price memory-mode slices (2x8Gi) in quota units. "
        "Empty: taken from the pool when all its GPUs agree.",
    ).tag(config=True)

    kernelspecs = List(
        Unicode(),
        help="Kernelspecs a GPU kernel may be launched with. Empty: those whose provisioner is "
        "bitfusion-local (local backend) or bitfusion-kubernetes (kubernetes backend).",
    ).tag(config=True)

    gpu_backends = List(
        Unicode(),
        help="GPU backends offered to users, the first the default: bitfusion, hami, nvidia, "
        "nvidia-time-slicing, nvidia-mps (and -renamed variants for renameByDefault). Empty: "
        "discovered from the nodes (HAMi's registration annotation, nvidia.com/gpu or MIG "
        "resources with GFD's sharing-strategy label, bitfusion.io/gpu), else bitfusion.",
    ).tag(config=True)

    gpu_meter_interval = Float(
        5.0,
        min=1.0,
        help="Seconds between two readings of each GPU kernel's meter (GPU memory, utilisation, "
        "idle time; NVML per process). Every tab shares the same readings.",
    ).tag(config=True)

    gpu_idle_timeout = Float(
        0.0,
        min=0.0,
        help="Seconds a GPU kernel's GPU may stay idle (0 % utilisation) before gpu_idle_action; "
        "0 (the default) never. Recommended: 1800. A kernel running a cell is never stopped. A "
        "kernelspec may set its own in kernel.json: metadata.bf_jupyter.gpu_idle_timeout.",
    ).tag(config=True)

    gpu_idle_warning = Float(
        300.0,
        min=0.0,
        help="Seconds before gpu_idle_action that the sidebar flags the kernel ('idle for 25 min — "
        "will be stopped in 5 min').",
    ).tag(config=True)

    gpu_idle_action = Unicode(
        "shutdown",
        help="What happens to a kernel idle past gpu_idle_timeout: 'shutdown', or 'release' (free "
        "the slice and keep the kernel where the backend can, else shut down).",
    ).tag(config=True)

    @validate("gpu_idle_action")
    def _check_idle_action(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"]).strip().lower()
        if value not in IDLE_ACTIONS:
            raise ValueError(
                f"gpu_idle_action {value!r} is not known: use {' or '.join(IDLE_ACTIONS)}"
            )
        return value

    @validate("gpu_backends")
    def _check_gpu_backends(self, proposal: dict[str, Any]) -> list[str]:
        from bf_jupyter.backends import get_backend

        return [get_backend(str(name)).name for name in proposal["value"]]

    @validate("backend")
    def _check_backend(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"]).strip().lower()
        if value and value not in BACKENDS:
            raise ValueError(f"backend {value!r} is not known: use {' or '.join(BACKENDS)}")
        return value

    @validate("per_gpu_memory")
    def _check_memory(self, proposal: dict[str, Any]) -> str:
        parse_memory_setting(str(proposal["value"]))
        return str(proposal["value"])

    @default("namespace")
    def _default_namespace(self) -> str:
        return pod_namespace() or "default"

    @property
    def effective_backend(self) -> Backend:
        return "kubernetes" if (self.backend or detect_backend()) == "kubernetes" else "local"

    def initialize_settings(self) -> None:
        assert self.serverapp is not None, "jupyter_server links the extension before this"
        backend = self.effective_backend
        service = self.settings[SERVICE_SETTING] = GpuService(
            backend=backend,
            namespace=self.namespace if backend == "kubernetes" else None,
            kernel_manager=self.serverapp.kernel_manager,
            kernel_spec_manager=self.serverapp.kernel_spec_manager,
            session_manager=self.serverapp.session_manager,
            cache_ttl=self.cache_ttl,
            launch_timeout=self.launch_timeout,
            local_quota_units=self.local_quota_units,
            per_gpu_memory=parse_memory_setting(self.per_gpu_memory),
            kernelspecs=list(self.kernelspecs),
            gpu_backends=list(self.gpu_backends),
            gpu_idle=IdlePolicy(
                self.gpu_idle_timeout,
                self.gpu_idle_warning,
                "release" if self.gpu_idle_action == "release" else "shutdown",
            ),
            gpu_meter_interval=self.gpu_meter_interval,
        )
        # Every kernel start on a slice passes the quota gate, also through the stock API.
        setattr(self.serverapp.kernel_manager, LAUNCH_GATE_ATTRIBUTE, service)
        self._default_transport_encryption()
        self.log.info(
            "bf-jupyter: %s backend%s, REST API at %sbitfusion/api/",
            backend,
            f", namespace {self.namespace}" if backend == "kubernetes" else "",
            self.serverapp.base_url,
        )

    def _default_transport_encryption(self) -> None:
        """Kernel traffic encrypted by default where jupyter_client can (CurveZMQ, policy
        ``auto``), unless the user chose a ``KernelManager.transport_encryption`` policy."""
        assert self.serverapp is not None
        kernels = self.serverapp.kernel_manager
        config = kernels.config
        chosen = "transport_encryption" in config.get("KernelManager", {})
        policy = encryption_policy(import_item(kernels.kernel_manager_class), chosen)
        if policy is None:
            self.log.info("bf-jupyter: kernel transport encryption is not available or was chosen")
            return
        # The kernel managers it creates take their configuration from it (their parent).
        config.KernelManager.transport_encryption = policy
        self.log.info("bf-jupyter: kernel transport encryption %s (CurveZMQ)", policy)

    def initialize_handlers(self) -> None:
        self.handlers.extend(default_handlers)

    async def stop_extension(self) -> None:
        service = self.settings.get(SERVICE_SETTING)
        if isinstance(service, GpuService):
            await service.close()
