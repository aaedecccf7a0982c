"""The kernel pod and its Secret, built from a GPU slice and the provisioner's settings. Pure.

What the pod promises:
- the slice is rendered by the configured GPU backend (``bf_jupyter.backends``): on Bitfusion
  (the default) the container's ``command`` is the in-pod launcher, so the mutating webhook can
  wrap it in ``bitfusion run`` (``auto-management/bitfusion: all``), and the slice travels as the
  contract's resource keys in ``limits`` (its filters in ``bitfusion-client/filter``); other
  backends put their own resource keys, annotations and scheduler name on the pod;
- the HMAC key is never in the spec: the container reads it through a ``secretKeyRef`` to the
  per-kernel Secret; the address comes from the Downward API (``status.podIP``);
- the environment is the allow-listed one the provisioner passes, nothing else; no API token is
  mounted unless a service account is configured; ``restartPolicy: Never`` (a restart is a fresh pod);
- labels from the contract (name, component, kernel id, user, server) so kernels can be found and
  orphans reaped; ``FallbackToLogsOnError`` puts the last log lines in the exit status.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bf_jupyter.backends import GpuBackend, Offer, Rendering, get_backend
from bf_jupyter.contract import (
    ENV_SLICE,
    LABEL_COMPONENT,
    LABEL_KERNEL_ID,
    LABEL_NAME,
    LABEL_SERVER,
    LABEL_USER,
)
from bf_jupyter.kernels.launcher import CURVE_ENV, IP_ENV, KEY_ENV, format_ports
from bf_jupyter.kubenames import MAX_LABEL_LENGTH, label_value

if TYPE_CHECKING:
    from bf_jupyter.slice import GpuSlice


def _bitfusion() -> GpuBackend:
    return get_backend("bitfusion")


__all__ = [
    "CONTAINER_NAME",
    "KernelPodBuilder",
    "KernelPodSettings",
    "PodLaunch",
    "pod_name_for",
]

Obj = dict[str, Any]
CONTAINER_NAME = "kernel"
SECRET_KEY_FIELD = "key"
_NAME_PART = re.compile(r"[^a-z0-9-]+")


def pod_name_for(kernel_id: str, generation: int) -> str:
    """``bf-kernel-<kernel id>-<generation>``: a DNS label (it becomes the hostname), unique per
    start of the kernel, so a restart's pod never waits for the old one's name."""
    suffix = f"-{generation}"
    stem = _NAME_PART.sub("-", f"bf-kernel-{kernel_id.lower()}").strip("-")
    return stem[: MAX_LABEL_LENGTH - len(suffix)].rstrip("-") + suffix


@dataclass(frozen=True)
class KernelPodSettings:
    """What an operator configures (the provisioner's traits), per kernelspec or server."""

    namespace: str
    image: str
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: Sequence[str] = ()
    service_account: str = ""
    cpu_request: str = ""
    cpu_limit: str = ""
    memory_request: str = ""
    memory_limit: str = ""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    extra_annotations: Mapping[str, str] = field(default_factory=dict)
    termination_grace_seconds: int = 10
    working_dir: str = ""
    gpu_backend: GpuBackend = field(default_factory=_bitfusion)
    gpu_offer: Offer = field(default_factory=Offer)  # e.g. the MIG profiles a memory slice maps to


@dataclass(frozen=True)
class PodLaunch:
    """One start of one kernel."""

    kernel_id: str
    generation: int
    gpu_slice: GpuSlice
    user: str
    server_id: str
    command: Sequence[str]
    ports: Mapping[str, int]
    signature_scheme: str
    environment: Mapping[str, str]
    owner: Mapping[str, Any] | None = None  # ownerReference to the server's pod
    encrypted: bool = False  # CurveZMQ keys are in the Secret and reach the launcher

    @property
    def pod_name(self) -> str:
        return pod_name_for(self.kernel_id, self.generation)


class KernelPodBuilder:
    """Builds the kernel's Secret and Pod manifests (plain dicts in the API's JSON shape)."""

    def __init__(self, settings: KernelPodSettings) -> None:
        self.settings = settings

    def labels(self, launch: PodLaunch) -> dict[str, str]:
        # Contract labels last: configuration cannot disguise a kernel pod as another one.
        return {
            **{k: label_value(v) for k, v in self.settings.extra_labels.items()},
            LABEL_NAME: "bf-jupyter",
            LABEL_COMPONENT: "kernel",
            LABEL_KERNEL_ID: label_value(launch.kernel_id),
            LABEL_USER: label_value(launch.user),
            LABEL_SERVER: label_value(launch.server_id),
        }

    def secret(
        self, launch: PodLaunch, key: bytes, curve_keys: Mapping[str, bytes] | None = None
    ) -> Obj:
        """The per-kernel Secret holding the HMAC key, and the CurveZMQ keypair when the channels
        are encrypted (the pod is made its owner once it exists)."""
        data = {SECRET_KEY_FIELD: base64.b64encode(key).decode()}
        data.update(
            {field: base64.b64encode(value).decode() for field, value in (curve_keys or {}).items()}
        )
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": launch.pod_name,
                "namespace": self.settings.namespace,
                "labels": self.labels(launch),
            },
            "type": "Opaque",
            "immutable": True,
            "data": data,
        }

    def rendering(self, launch: PodLaunch) -> Rendering:
        """The slice as the GPU backend renders it for this pod (its extra objects named as the
        pod and labelled as kernel objects). Raises ``SliceRefused``."""
        settings = self.settings
        rendering = settings.gpu_backend.render(launch.gpu_slice, settings.gpu_offer)
        return rendering.named(launch.pod_name, settings.namespace, self.labels(launch))

    def slice_objects(self, launch: PodLaunch) -> list[Obj]:
        """Objects created beside the pod and owned by it, e.g. a DRA ResourceClaimTemplate."""
        return [dict(obj) for obj in self.rendering(launch).objects]

    def pod(self, launch: PodLaunch) -> Obj:
        """The kernel pod; it references the Secret by name and never contains the key."""
        settings = self.settings
        rendering = self.rendering(launch)
        annotations = dict(settings.extra_annotations)
        metadata: Obj = {
            "name": launch.pod_name,
            "namespace": settings.namespace,
            "labels": self.labels(launch),
            "annotations": annotations,
        }
        if launch.owner:
            metadata["ownerReferences"] = [dict(launch.owner)]
        container = self._container(launch)
        spec: Obj = {
            "restartPolicy": "Never",
            "enableServiceLinks": False,
            "automountServiceAccountToken": bool(settings.service_account),
            "terminationGracePeriodSeconds": settings.termination_grace_seconds,
            "containers": [container],
        }
        if settings.service_account:
            spec["serviceAccountName"] = settings.service_account
        if settings.node_selector:
            spec["nodeSelector"] = dict(settings.node_selector)
        if settings.tolerations:
            spec["tolerations"] = [dict(t) for t in settings.tolerations]
        if settings.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": n} for n in settings.image_pull_secrets]
        rendering.apply(spec, metadata, container)
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}

    def _container(self, launch: PodLaunch) -> Obj:
        settings = self.settings
        command = [
            *launch.command,
            "--ports",
            format_ports(dict(launch.ports)),
            "--signature-scheme",
            launch.signature_scheme,
        ]
        container: Obj = {
            "name": CONTAINER_NAME,
            "image": settings.image,
            "imagePullPolicy": settings.image_pull_policy,
            "command": command,
            "env": self._env(launch),
            "ports": [
                {"name": name, "containerPort": port, "protocol": "TCP"}
                for name, port in launch.ports.items()
            ],
            "resources": self._resources(),
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": {"allowPrivilegeEscalation": False},
        }
        if settings.working_dir:
            container["workingDir"] = settings.working_dir
        return container

    def _env(self, launch: PodLaunch) -> list[Obj]:
        fixed = {KEY_ENV, IP_ENV, "KERNEL_ID", ENV_SLICE, *CURVE_ENV.values()}
        env: list[Obj] = [
            {
                "name": KEY_ENV,
                "valueFrom": {"secretKeyRef": {"name": launch.pod_name, "key": SECRET_KEY_FIELD}},
            },
            {"name": IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            *(
                {
                    "name": variable,
                    "valueFrom": {"secretKeyRef": {"name": launch.pod_name, "key": field}},
                }
                for field, variable in (CURVE_ENV.items() if launch.encrypted else ())
            ),
            {"name": "KERNEL_ID", "value": launch.kernel_id},
            {"name": ENV_SLICE, "value": launch.gpu_slice.to_text()},
        ]
        env += [
            {"name": name, "value": value}
            for name, value in sorted(launch.environment.items())
            if name not in fixed
        ]
        return env

    def _resources(self) -> Obj:
        """CPU and memory as configured; the GPU backend's rendering adds the slice's keys."""
        settings = self.settings
        requests = {
            name: value
            for name, value in (("cpu", settings.cpu_request), ("memory", settings.memory_request))
            if value
        }
        limits: dict[str, str] = {
            name: value
            for name, value in (("cpu", settings.cpu_limit), ("memory", settings.memory_limit))
            if value
        }
        return {"requests": requests, "limits": limits} if requests else {"limits": limits}
