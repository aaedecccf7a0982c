"""Pod manifests for the process-kubelet's tests: one container running a local command on the
test node (selected by ``nodeSelector``, so kube-scheduler binds it there)."""

from __future__ import annotations

from typing import Any

from tests.cluster.kubelet.dra_driver import FakeGpu

Obj = dict[str, Any]
NODE = "kubelet-test"
# Keeps every other test's pods off the test node (the e2e stack's node shares the control plane).
TAINT = {"key": "bf-jupyter.test/kubelet-tests", "value": "only", "effect": "NoSchedule"}
# The node's DRA devices: two whole 40Gi GPUs and one 16Gi GPU whose memory claims share.
DRA_GPUS = (FakeGpu(0), FakeGpu(1), FakeGpu(2, memory="16Gi", shared=True))
TOLERATION = {"key": TAINT["key"], "operator": "Equal", "value": "only", "effect": "NoSchedule"}


def pod(name: str, command: list[str], **spec: Any) -> Obj:
    """A pod for the test node running ``command``; ``container=`` adds to its one container."""
    container = {"name": "main", "image": "python:3.11", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "nodeSelector": {"kubernetes.io/hostname": NODE},
            "tolerations": [TOLERATION],
            "containers": [container],
            **spec,
        },
    }


def python(code: str) -> list[str]:
    return ["python", "-c", code]
