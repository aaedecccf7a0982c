"""What a container's ``waiting`` reason says about whether it will ever run. Pure.

Kernel pods (``kernels.kubernetes.pod_status``) and the magic's Jobs (``notebook.cluster_workload``)
both stop waiting the moment the kubelet says the container cannot run, instead of at a timeout.
"""

from __future__ import annotations

__all__ = ["CREATE_FAILURES", "PULL_FAILURES", "lasting_create_failure"]

PULL_FAILURES = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "RegistryUnavailable",
    }
)
CREATE_FAILURES = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)

# The Node authorizer learns a pod's Secrets and ConfigMaps from a watch: a kubelet that reads them
# the moment the pod is bound may be refused with this, and retries; it is no reason to give up.
_NODE_NOT_YET_AUTHORIZED = "no relationship found between node"


def lasting_create_failure(reason: str, message: str) -> bool:
    """``reason`` is a container-creation failure the kubelet will not get past by retrying."""
    return reason in CREATE_FAILURES and _NODE_NOT_YET_AUTHORIZED not in message
