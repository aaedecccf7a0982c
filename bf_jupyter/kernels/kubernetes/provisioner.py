"""``bitfusion-kubernetes``: each kernel runs in its own pod on the launch's GPU slice.

The Kubernetes leaf of ``RemoteKernelProvisioner``: pod settings as traits (per kernelspec in its
provisioner ``config``, or server-wide as ``c.BitfusionKubernetesProvisioner.<trait>``), and the
hooks answered with the API: a Secret holding the key, then the pod (the webhook wraps its command in
``bitfusion run``), then the Secret made owned by the pod; progress and failures from watches on the
pod, its Events and its log; deletion waits until the pod is gone, so the slice is released when
shutdown returns.

Per-launch slice: ``start_kernel(env={"BF_SLICE": "1x50%"})`` (see ``sliced_kernel``); the server
extension reads ``provisioner.gpu_slice`` and ``provisioner.pod_name``, also in
``get_provisioner_info()``. A restarted server reattaches with ``load_provisioner_info()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any

from traitlets import Bool, Dict, Int, List, TraitError, Unicode, default, validate
from typing_extensions import override

from bf_jupyter.backends import (
    BACKEND_NAMES,
    DEFAULT_BACKEND,
    GpuBackend,
    Offer,
    UnknownBackend,
    get_backend,
)
from bf_jupyter.backends.dra import DraBackend
from bf_jupyter.contract import ENV_GPU_BACKEND, LABEL_KERNEL_ID
from bf_jupyter.kernels.kubernetes import pod_watch
from bf_jupyter.kernels.kubernetes.pod_builder import (
    CONTAINER_NAME,
    KernelPodBuilder,
    KernelPodSettings,
    PodLaunch,
)
from bf_jupyter.kernels.kubernetes.pod_startup import PodStartupWatch
from bf_jupyter.kernels.kubernetes.pod_status import one_sentence, read_pod
from bf_jupyter.kernels.kubernetes.reaper import KernelReaper, server_pod_owner
from bf_jupyter.kernels.remote import RemoteKernelProvisioner
from bf_jupyter.kernels.remote_start import Address, Progress, RemoteStart, RemoteStartFailure
from bf_jupyter.kubeapi import KubeApi, KubeApiError, KubeUnavailable
from bf_jupyter.kubenames import label_value
from bf_jupyter.slice import SliceError
from bf_jupyter.version import __version__

__all__ = ["BitfusionKubernetesProvisioner", "GpuKubernetesProvisioner"]

_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_APIS: dict[tuple[str, str], KubeApi] = {}  # one connection per kubeconfig/context per process


def _in_pod() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


class BitfusionKubernetesProvisioner(RemoteKernelProvisioner):
    """Kernels in pods, wrapped by the Bitfusion webhook, on the GPU slice chosen per launch."""

    namespace = Unicode(
        help="Namespace of kernel pods (default: the server's own namespace when it runs in a pod, "
        "else 'default')."
    ).tag(config=True)
    image = Unicode(
        f"bf-jupyter/kernel:{__version__}", help="Kernel image (cluster/images/kernel.Dockerfile)."
    ).tag(config=True)
    image_pull_policy = Unicode("IfNotPresent", help="Always, IfNotPresent or Never.").tag(
        config=True
    )
    image_pull_secrets = List(Unicode(), help="Names of Secrets to pull the image with.").tag(
        config=True
    )
    service_account = Unicode(
        "", help="Service account of kernel pods; empty: none, and no API token is mounted."
    ).tag(config=True)
    cpu_request = Unicode("500m", help="CPU request of the kernel container ('' for none).").tag(
        config=True
    )
    cpu_limit = Unicode("", help="CPU limit of the kernel container ('' for none).").tag(
        config=True
    )
    memory_request = Unicode("1Gi", help="Memory request ('' for none).").tag(config=True)
    memory_limit = Unicode("", help="Memory limit ('' for none).").tag(config=True)
    node_selector = Dict(Unicode(), help="nodeSelector of kernel pods.").tag(config=True)
    tolerations = List(Dict(), help="Tolerations of kernel pods, as in a pod spec.").tag(
        config=True
    )
    extra_labels = Dict(Unicode(), help="Labels added to kernel pods and Secrets.").tag(config=True)
    extra_annotations = Dict(Unicode(), help="Annotations added to kernel pods.").tag(config=True)
    termination_grace_seconds = Int(
        10, help="Seconds a kernel pod gets to stop (the slice is released when it has)."
    ).tag(config=True)
    working_dir = Unicode("", help="Working directory of the kernel ('' for the image's).").tag(
        config=True
    )
    kubeconfig = Unicode(
        "",
        help="kubeconfig file ('' for in-cluster credentials, else $KUBECONFIG or ~/.kube/config).",
    ).tag(config=True)
    kube_context = Unicode("", help="kubeconfig context ('' for the current one).").tag(config=True)
    fail_on_unschedulable = Bool(
        True,
        help="Fail a launch as soon as the scheduler finds no node. Set False on clusters with a "
        "node autoscaler, where a pending kernel may fit once a node is added.",
    ).tag(config=True)
    server_pod_name = Unicode(
        help="The notebook server's own pod, made the owner of kernel pods so they go when it goes "
        "(default: $POD_NAME, else $HOSTNAME, when the server runs in a pod; '' for none)."
    ).tag(config=True)
    server_id = Unicode(
        help="Value of the bf-jupyter/server label on this server's kernel pods (default: its pod "
        "name, else HOST-USER). Two servers must not share one: each reaps its own orphans."
    ).tag(config=True)
    reap_orphans = Bool(
        help="At the first launch, delete this server's kernel pods whose kernels it no longer "
        "knows (default: True when the server runs in a pod)."
    ).tag(config=True)

    gpu_backend = Unicode(
        "",
        help="The GPU-sharing stack that serves the slice: " + ", ".join(BACKEND_NAMES) + " "
        "(see `bf-jupyter slice explain SLICE --backend NAME` for what a slice becomes). Empty: "
        f"the launch's choice ({ENV_GPU_BACKEND} in its environment, set by the server from the "
        "picker), else bitfusion. A launch asking for another backend than a set one fails.",
    ).tag(config=True)
    dra_device_class = Unicode(
        "",
        help="dra backends: the DeviceClass whole and fractional slices ask for (empty: "
        "gpu.nvidia.com, or the class the backend's default names).",
    ).tag(config=True)
    mig_profiles = List(
        Unicode(),
        help="nvidia backends: the MIG profiles the cluster offers (e.g. mig-1g.10gb), so that a "
        "memory slice such as 1x10Gi takes the smallest that holds it.",
    ).tag(config=True)

    @validate("gpu_backend")
    def _valid_gpu_backend(self, proposal: Any) -> str:
        if not str(proposal["value"]).strip():
            return ""
        try:
            return get_backend(str(proposal["value"])).name
        except UnknownBackend as error:
            raise TraitError(str(error)) from None

    @default("namespace")
    def _default_namespace(self) -> str:
        with contextlib.suppress(OSError):
            return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        return "default"

    @default("server_pod_name")
    def _default_server_pod_name(self) -> str:
        if not _in_pod():
            return ""
        return os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or ""

    @default("server_id")
    def _default_server_id(self) -> str:
        return self.server_pod_name or f"{socket.gethostname()}-{self.kernel_user(None)}"

    @default("reap_orphans")
    def _default_reap_orphans(self) -> bool:
        return _in_pod()

    _pod_name: str | None = None
    _pod_version: str | None = None
    # Kinds of the objects named as the pod and owned by it (Secret, a ResourceClaimTemplate).
    _owned_kinds: tuple[str, ...] = ("Secret",)
    _api: KubeApi | None = None
    # The GPU backend of the running launch (``gpu_backend``, else the launch's BF_GPU_BACKEND).
    launch_backend: str | None = None

    # ----- connection and settings -----------------------------------------------------------------

    async def kube(self) -> KubeApi:
        """The API connection (made once per kubeconfig/context, off the event loop)."""
        if self._api is None:
            key = (self.kubeconfig, self.kube_context)
            if key not in _APIS:
                _APIS[key] = await asyncio.to_thread(
                    KubeApi.connect,
                    kubeconfig=self.kubeconfig or None,
                    context=self.kube_context or None,
                )
            self._api = _APIS[key]
        return self._api

    def pod_settings(self) -> KernelPodSettings:
        return KernelPodSettings(
            namespace=self.namespace,
            image=self.image,
            image_pull_policy=self.image_pull_policy,
            image_pull_secrets=tuple(self.image_pull_secrets),
            service_account=self.service_account,
            cpu_request=self.cpu_request,
            cpu_limit=self.cpu_limit,
            memory_request=self.memory_request,
            memory_limit=self.memory_limit,
            node_selector=dict(self.node_selector),
            tolerations=tuple(self.tolerations),
            extra_labels=dict(self.extra_labels),
            extra_annotations=dict(self.extra_annotations),
            termination_grace_seconds=self.termination_grace_seconds,
            working_dir=self.working_dir,
            gpu_backend=self._gpu_backend(),
            gpu_offer=Offer(mig_profiles=tuple(self.mig_profiles)),
        )

    def _gpu_backend(self) -> GpuBackend:
        backend = get_backend(self.launch_backend or self.gpu_backend or DEFAULT_BACKEND)
        if isinstance(backend, DraBackend) and self.dra_device_class:
            backend = backend.with_device_class(self.dra_device_class)
        return backend

    @override
    def termination_grace(self) -> int:
        return int(self.termination_grace_seconds)

    # ----- hooks ----------------------------------------------------------------------------------

    @override
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        env: Mapping[str, str] = kwargs.get("env") or {}
        kwargs = await super().pre_launch(**kwargs)  # chooses the slice, starts progress anew
        self.launch_backend = self.choose_backend(env)
        return kwargs

    def choose_backend(self, env: Mapping[str, str]) -> str:
        """The launch's GPU backend: ``gpu_backend`` when set, else ``BF_GPU_BACKEND`` from the
        launch's environment, else bitfusion. Raises ``KernelLaunchError`` (published) for an
        unknown name or one that contradicts the kernelspec's ``gpu_backend``."""
        asked = str(env.get(ENV_GPU_BACKEND, "")).strip().lower()
        if self.gpu_backend and asked and asked != self.gpu_backend:
            raise self.launch_failed(
                f"{ENV_GPU_BACKEND} {asked} was refused: this kernelspec runs on the "
                f"{self.gpu_backend} backend only (its gpu_backend setting)."
            )
        try:
            return get_backend(self.gpu_backend or asked or DEFAULT_BACKEND).name
        except UnknownBackend as error:
            raise self.launch_failed(f"{ENV_GPU_BACKEND} was refused: {error}.") from None

    @override
    async def create_remote(self, start: RemoteStart) -> None:
        settings = self.pod_settings()
        try:  # a slice this GPU backend cannot honour fails before anything is created
            settings.gpu_backend.check(start.gpu_slice, settings.gpu_offer)
        except SliceError as error:
            raise RemoteStartFailure(str(error)) from None
        try:
            api = await self.kube()
            await self._reap_once(api, start.kernel_id)
            owner = await server_pod_owner(api, self.namespace, self.server_pod_name)
        except (KubeUnavailable, KubeApiError) as error:
            raise RemoteStartFailure(one_sentence(f"Kubernetes is not usable: {error}")) from None
        builder = KernelPodBuilder(settings)
        launch = PodLaunch(
            kernel_id=start.kernel_id,
            generation=start.generation,
            gpu_slice=start.gpu_slice,
            user=start.user,
            server_id=self.server_id,
            command=start.command,
            ports=start.ports,
            signature_scheme=start.signature_scheme,
            environment=start.environment,
            owner=owner,
            encrypted=start.curve_keys is not None,
        )
        self.pod_name = self._pod_name = launch.pod_name
        KernelReaper.remember(start.kernel_id)
        try:
            secret = builder.secret(launch, start.key, start.curve_keys)
            await asyncio.to_thread(self._create_objects, api, builder, launch, secret)
        except RemoteStartFailure:
            self.pod_name = self._pod_name = None
            raise
        self.publish("created", f"Pod {self.namespace}/{launch.pod_name} created")

    def _create_objects(
        self, api: KubeApi, builder: KernelPodBuilder, launch: PodLaunch, secret: dict[str, Any]
    ) -> None:
        """Secret first (so the container never waits for it), then the pod, then the slice's
        objects (a DRA ResourceClaimTemplate the pod claims) created owned by the pod, and the pod
        made the Secret's owner; a refusal at any step deletes what exists. Raises
        RemoteStartFailure.

        The template is created after the pod, with its owner, rather than patched: the API
        server refuses any later update of a template whose opaque parameters it stored as sent
        ("spec: field is immutable"). The resourceclaim controller retries the pod's claim until
        its template exists."""
        namespace = self.namespace
        created: list[tuple[str, str]] = []

        def create(kind: str, body: dict[str, Any], refusal: str) -> dict[str, Any]:
            try:
                made = api.create(kind, body, namespace)
            except (KubeApiError, KubeUnavailable) as error:
                for done_kind, name in reversed(created):
                    with contextlib.suppress(KubeApiError, KubeUnavailable):
                        api.delete(done_kind, name, namespace)
                raise RemoteStartFailure(one_sentence(f"{refusal}: {error}")) from None
            created.append((kind, str(body["metadata"]["name"])))
            return made

        create("Secret", secret, "The kernel's Secret was refused")
        pod = create("Pod", builder.pod(launch), "Kubernetes refused the kernel pod")
        metadata = pod.get("metadata") or {}
        self._pod_version = metadata.get("resourceVersion")
        owner = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": launch.pod_name,
            "uid": metadata.get("uid"),
            "blockOwnerDeletion": False,
        }
        for obj in builder.slice_objects(launch):
            obj["metadata"] = {**obj["metadata"], "ownerReferences": [owner]}
            create(str(obj["kind"]), obj, f"The kernel's {obj['kind']} was refused")
        self._owned_kinds = tuple(kind for kind, _ in created if kind != "Pod")
        try:
            api.patch(
                "Secret", launch.pod_name, {"metadata": {"ownerReferences": [owner]}}, namespace
            )
        except (KubeApiError, KubeUnavailable) as error:
            # Not fatal: the Secret is still deleted with the kernel, and reaped if the server dies.
            self.log.warning("kernel %s: Secret not owned by its pod: %s", self.kernel_id, error)

    async def _reap_once(self, api: KubeApi, own_kernel_id: str) -> None:
        kinds: tuple[str, ...] = ("Pod", "Secret")
        if isinstance(self._gpu_backend(), DraBackend):  # claims are owned by pods, templates too
            kinds += ("ResourceClaimTemplate", "ResourceClaim")
        reaper = KernelReaper(api, namespace=self.namespace, server_id=self.server_id, kinds=kinds)
        if not self.reap_orphans or not reaper.first_time():
            return
        known = set(KernelReaper.known_kernel_ids(self.parent)) | {own_kernel_id}
        removed = await asyncio.to_thread(reaper.reap, known)
        for name in removed:
            self.log.warning("deleted orphaned kernel object %s/%s", self.namespace, name)

    @override
    async def watch_start(self) -> AsyncGenerator[Progress | Address, None]:
        assert self._pod_name is not None, "create_remote names the pod"
        startup = PodStartupWatch(
            await self.kube(),
            namespace=self.namespace,
            name=self._pod_name,
            resource_version=self._pod_version,
            fail_on_unschedulable=self.fail_on_unschedulable,
        )
        try:
            async for signal_ in startup.signals():
                yield signal_
        except RemoteStartFailure as failure:
            raise self._explained(failure) from None
        finally:
            self._pod_version = startup.resource_version

    def _explained(self, failure: RemoteStartFailure) -> RemoteStartFailure:
        """A scheduler's "cannot allocate all claims", with what the kernel's claim asked for."""
        backend = self._gpu_backend()
        if not isinstance(backend, DraBackend) or self.gpu_slice is None:
            return failure
        if "claim" not in str(failure):
            return failure
        try:
            asked = backend.describe_request(self.gpu_slice, self.pod_settings().gpu_offer)
        except SliceError:
            return failure
        return RemoteStartFailure(
            f"{str(failure).rstrip('.')}; the kernel's claim asked for {asked}."
        )

    @override
    async def follow_remote(self) -> int:
        api = await self.kube()
        name = self._pod_name
        if name is None:
            return -1
        current = await pod_watch.read_pod_or_none(api, self.namespace, name)
        if current is None:
            return -1
        changes = pod_watch.follow_pod(
            api,
            self.namespace,
            name,
            resource_version=(current.get("metadata") or {}).get("resourceVersion"),
            retry_unavailable=True,
        )
        pod: dict[str, Any] | None = current
        try:
            while pod is not None:
                reading = read_pod(pod, container=CONTAINER_NAME, fail_on_unschedulable=False)
                if reading.exit_code is not None:
                    return reading.exit_code
                event = await anext(changes, None)
                pod = None if event is None or event.type == "DELETED" else event.object
        finally:
            await changes.aclose()  # type: ignore[attr-defined]
        return -1

    @override
    async def stop_remote(self, *, grace_seconds: int) -> None:
        if self._pod_name is None:
            return
        api = await self.kube()
        try:
            await asyncio.to_thread(
                api.delete,
                "Pod",
                self._pod_name,
                self.namespace,
                grace_period_seconds=grace_seconds,
            )
        except (KubeApiError, KubeUnavailable) as error:
            self.log.warning(
                "kernel %s: could not delete pod %s: %s", self.kernel_id, self._pod_name, error
            )

    @override
    async def release_remote(self) -> None:
        name = self._pod_name
        if name is None:
            return
        api = await self.kube()

        def delete_all() -> None:
            for kind in ("Pod", *self._owned_kinds):
                with contextlib.suppress(KubeApiError):
                    api.delete(kind, name, self.namespace)

        try:
            await asyncio.to_thread(delete_all)
            await asyncio.wait_for(
                self._wait_released(api, name), self.termination_grace_seconds + 30
            )
        except (KubeUnavailable, asyncio.TimeoutError) as error:
            self.log.warning("kernel %s: pod %s may still exist: %s", self.kernel_id, name, error)
        self.pod_name = self._pod_name = None

    async def _wait_released(self, api: KubeApi, name: str) -> None:
        """Until the pod is gone, and on DRA the claims made for it (the resourceclaim controller
        deletes them after the pod), so the devices are free when shutdown returns."""
        await pod_watch.wait_pod_gone(api, self.namespace, name)
        if "ResourceClaimTemplate" in self._owned_kinds and self.kernel_id:
            selector = f"{LABEL_KERNEL_ID}={label_value(str(self.kernel_id))}"
            await pod_watch.wait_all_gone(api, "ResourceClaim", self.namespace, selector)

    @override
    async def cleanup(self, restart: bool = False) -> None:
        final = not self.take_restart_flag(restart)
        await super().cleanup(restart=restart)
        if final and self.kernel_id:
            KernelReaper.forget(str(self.kernel_id))

    @override
    def remote_info(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "pod_name": self._pod_name,
            "server_id": self.server_id,
            "gpu_backend": self.launch_backend,
            "owned_kinds": list(self._owned_kinds),
        }

    @override
    def restore_remote(self, info: Mapping[str, Any]) -> None:
        self.namespace = str(info.get("namespace") or self.namespace)
        self.pod_name = self._pod_name = info.get("pod_name")
        if self.kernel_id:
            KernelReaper.remember(str(self.kernel_id))
        if info.get("server_id"):
            self.server_id = str(info["server_id"])
        if info.get("gpu_backend"):
            self.launch_backend = str(info["gpu_backend"])
        if isinstance(info.get("owned_kinds"), list):
            self._owned_kinds = tuple(str(kind) for kind in info["owned_kinds"])


# The backend-neutral name (entry point ``gpu-kubernetes``); ``bitfusion-kubernetes`` stays the same
# class, so existing kernelspecs and ``c.BitfusionKubernetesProvisioner`` settings keep working.
GpuKubernetesProvisioner = BitfusionKubernetesProvisioner
