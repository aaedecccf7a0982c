"""The project's stable names: resource keys, quota resource, pod annotations and kernel-pod labels.

Users, manifests and every layer rely on these strings; they are defined here once. Pure, no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

__all__ = [
    "ALLOCATED_SHARES_ENV",
    "ALLOCATED_UNITS_ENV",
    "ANNOTATION_CLIENT_OS",
    "ANNOTATION_CLIENT_VERSION",
    "ANNOTATION_FILTER",
    "ANNOTATION_MANAGEMENT",
    "ANNOTATION_STATUS",
    "COMPONENT_WORKLOAD",
    "ENV_GPU_BACKEND",
    "ENV_SLICE",
    "LABEL_COMPONENT",
    "LABEL_KERNEL_ID",
    "LABEL_NAME",
    "LABEL_SERVER",
    "LABEL_USER",
    "QUOTA_RESOURCE",
    "RESOURCE_AMOUNT",
    "RESOURCE_MEMORY",
    "RESOURCE_PERCENT",
    "SLICE_LIMIT_ENV",
    "SLICE_RESOURCE_KEYS",
    "STATUS_INJECTED",
    "UNITS_PER_GPU",
    "ManagementMode",
    "slice_annotation_key",
    "units_to_gpus",
]

# Container resource keys a user writes (upstream-compatible).
RESOURCE_AMOUNT = "bitfusion.io/gpu-amount"
RESOURCE_PERCENT = "bitfusion.io/gpu-percent"
RESOURCE_MEMORY = "bitfusion.io/gpu-memory"
SLICE_RESOURCE_KEYS = (RESOURCE_AMOUNT, RESOURCE_PERCENT, RESOURCE_MEMORY)

# The quota resource the webhook writes: 1 unit = 1 % of one GPU.
QUOTA_RESOURCE = "bitfusion.io/gpu"
UNITS_PER_GPU = 100

# What the device plugin's Allocate puts in a container's environment: the quota units the kubelet
# granted (e.g. "150") and how they were packed, GPU by GPU ("s0-g0:100,s0-g1:50"). Bitfusion
# still picks the real GPUs at `bitfusion run` time; these are the node's accounting.
ALLOCATED_UNITS_ENV = "BF_JUPYTER_GPU_UNITS"
ALLOCATED_SHARES_ENV = "BF_JUPYTER_GPU_SHARES"

# Pod annotations.
ANNOTATION_MANAGEMENT = "auto-management/bitfusion"
ANNOTATION_STATUS = "auto-management/status"
STATUS_INJECTED = "injected"
ANNOTATION_CLIENT_OS = "bitfusion-client/os"
ANNOTATION_CLIENT_VERSION = "bitfusion-client/version"
ANNOTATION_FILTER = "bitfusion-client/filter"
_SLICE_ANNOTATION_PREFIX = "slice.bitfusion.io/"

# Kernel pods: app.kubernetes.io/name=bf-jupyter, app.kubernetes.io/component=kernel, plus these.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_KERNEL_ID = "bf-jupyter/kernel-id"
LABEL_USER = "bf-jupyter/user"
# Work submitted with ``%bitfusion submit`` carries app.kubernetes.io/component=workload.
COMPONENT_WORKLOAD = "workload"

# The slice a kernel or submitted workload runs on, in text form (``1x50%``), for code inside it.
ENV_SLICE = "BF_SLICE"
# The GPU backend a kernel's slice is served by (hami, nvidia…): set by the server at launch, read
# by the Kubernetes provisioner and, as the default of ``%bitfusion submit --backend``, the kernel.
ENV_GPU_BACKEND = "BF_GPU_BACKEND"

# Injection mode: the slice (text form) the client's slice guard lets `bitfusion run` ask for; the
# webhook sets it on each container it gives the client without wrapping its command.
SLICE_LIMIT_ENV = "BF_JUPYTER_SLICE_LIMIT"

# Which notebook server launched a kernel pod: its reaper deletes only its own orphans.
LABEL_SERVER = "bf-jupyter/server"


class ManagementMode(enum.Enum):
    """What the mutating webhook does with a pod, from its ``auto-management/bitfusion`` annotation."""

    ALL = "all"  # inject the client and wrap GPU containers' commands
    INJECTION = "injection"  # inject the client only
    NONE = "none"

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str] | None) -> ManagementMode:
        value = str((annotations or {}).get(ANNOTATION_MANAGEMENT, "")).strip().lower()
        if value in {"all", "y", "yes", "true", "on"}:
            return cls.ALL
        if value == "injection":
            return cls.INJECTION
        return cls.NONE


def slice_annotation_key(container: str) -> str:
    """The annotation where the webhook records a container's slice once its keys became units."""
    return _SLICE_ANNOTATION_PREFIX + container


def units_to_gpus(units: int) -> float:
    """Quota units in GPUs (100 units = one whole GPU)."""
    return units / UNITS_PER_GPU
