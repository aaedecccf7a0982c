"""The Helm chart on the real control plane, with the pinned helm: ``helm install`` makes webhooks
that answer and admit a Bitfusion pod (wrapped, run under its lease); ``helm upgrade`` with a changed
value rolls the webhook, keeps its certificates and refuses no pod on the way; ``helm uninstall``
leaves no webhook configuration (a failing-closed leftover would refuse every Bitfusion pod) and
nothing else of the release.

The tests run in this order on one release (``helm_stack``), as an operator would."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.contract import (
    ANNOTATION_MANAGEMENT,
    ANNOTATION_STATUS,
    QUOTA_RESOURCE,
    RESOURCE_AMOUNT,
    RESOURCE_MEMORY,
    STATUS_INJECTED,
)
from bf_jupyter.kubeapi import KubeApiError
from tests.e2e.test_bitfusion_pods import PROBE, workload
from tests.support.cluster_fixtures import real_kubeconfig
from tests.support.stack import SYSTEM_NAMESPACE

if TYPE_CHECKING:
    from tests.e2e.helm.release import HelmStack
    from tests.support.cluster_handle import ClusterHandle

pytestmark = pytest.mark.skipif(
    real_kubeconfig() is not None, reason="installs the chart on a test cluster of its own"
)
Obj = dict[str, Any]
WEBHOOK_PODS = "app.kubernetes.io/name=bf-webhook"


@pytest.fixture
def handle(helm_stack: HelmStack) -> ClusterHandle:
    assert helm_stack.handle is not None
    return helm_stack.handle


@pytest.fixture
def namespace(handle: ClusterHandle) -> Iterator[str]:
    name = handle.create_namespace("helm")
    try:
        yield name
    finally:
        handle.delete_namespace(name)


def memory_slice_pod(memory: str) -> Obj:
    """A pod asking for one GPU with ``memory`` of its memory."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "memory-slice", "annotations": {ANNOTATION_MANAGEMENT: "all"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["true"],
                    "resources": {"limits": {RESOURCE_AMOUNT: "1", RESOURCE_MEMORY: memory}},
                }
            ]
        },
    }


def dry_run(stack: HelmStack, namespace: str, pod: Obj) -> tuple[Obj | None, str]:
    """The pod as admission leaves it (server-side dry run), or None and the refusal."""
    result = stack.control_plane.kubectl(
        "-n", namespace, "create", "--dry-run=server", "-o", "json", "-f", "-",
        input=json.dumps(pod),
    )  # fmt: skip
    if result.returncode != 0:
        return None, result.stderr
    return json.loads(result.stdout), ""


def admitted_eventually(stack: HelmStack, namespace: str, pod: Obj, timeout: float = 60) -> Obj:
    """The pod as admission leaves it, once the webhook admits it (the Service may route to an old
    pod for a moment after it stopped)."""
    deadline = time.monotonic() + timeout
    while True:
        admitted, why = dry_run(stack, namespace, pod)
        if admitted is not None:
            return admitted
        assert time.monotonic() < deadline, f"still refused after {timeout:.0f}s: {why}"
        time.sleep(0.5)


def ca_bundles(stack: HelmStack) -> set[str]:
    found = set()
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        result = stack.control_plane.kubectl(
            "get", kind, "-l", "app.kubernetes.io/part-of=bf-jupyter",
            "-o", "jsonpath={.items[*].webhooks[*].clientConfig.caBundle}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        found.update(result.stdout.split())
    return found


def webhook_pods(handle: ClusterHandle) -> set[str]:
    return {
        pod["metadata"]["name"]
        for pod in handle.api.list("Pod", SYSTEM_NAMESPACE, label_selector=WEBHOOK_PODS)
        if not pod["metadata"].get("deletionTimestamp")
    }


class PlainPodCreator:
    """Creates pods that ask for no GPU, one after another until stopped, and keeps every refusal.
    They select no node, so they stay Pending: creating them is what admission judges."""

    def __init__(self, handle: ClusterHandle, namespace: str) -> None:
        self.handle = handle
        self.namespace = namespace
        self.created = 0
        self.refusals: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PlainPodCreator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            pod = {
                "metadata": {"name": f"plain-{self.created + len(self.refusals)}"},
                "spec": {
                    "nodeSelector": {"example.com/no-such-node": "true"},
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                },
            }
            try:
                self.handle.api.create("Pod", pod, self.namespace)
                self.created += 1
            except KubeApiError as error:
                self.refusals.append(str(error))
            self._stop.wait(0.2)


def test_install_answers_and_admits_a_bitfusion_pod(
    helm_stack: HelmStack, handle: ClusterHandle, namespace: str
) -> None:
    # given the chart installed with its default values (the fixture waited for the webhook)
    # when the seed's pod asks for half of one GPU
    created = handle.api.create("Pod", workload("train", 50, ["python", "-c", PROBE]), namespace)

    # then the chart's webhook wrapped it and priced it in quota units
    assert created["metadata"]["annotations"][ANNOTATION_STATUS] == STATUS_INJECTED
    train = created["spec"]["containers"][0]
    assert train["command"][0].endswith("/bin/bitfusion")
    assert train["command"][1:7] == ["run", "-n", "1", "-p", "0.5", "--"]
    assert train["resources"]["limits"] == {QUOTA_RESOURCE: "50"}
    # and it runs to the end under its lease: token service, device plugin and client all work
    done = handle.wait_for_pod_phase(namespace, "train", ("Succeeded", "Failed"), timeout=120)
    log = handle.pod_log(namespace, "train", container="train")
    assert done["status"]["phase"] == "Succeeded", log
    assert "Locked 1 GPUs" in log


def test_upgrade_rolls_the_webhook_and_refuses_no_plain_pod(
    helm_stack: HelmStack, handle: ClusterHandle, namespace: str
) -> None:
    # given the installed release: a 24Gi slice exceeds its 16Gi GPUs
    refused, why = dry_run(helm_stack, namespace, memory_slice_pod("24Gi"))
    assert refused is None and "exceeds the 16Gi of one GPU" in why, why
    before_pods = webhook_pods(handle)
    before_bundles = ca_bundles(helm_stack)

    # when the GPUs' memory changes in an upgrade, while pods that ask for no GPU keep coming
    with PlainPodCreator(handle, namespace) as plain:
        helm_stack.install_or_upgrade("upgrade", "--set", "bitfusion.perGpuMemory=32Gi")

    # then none of them was refused during the roll
    assert plain.refusals == []
    assert plain.created > 0
    # and every webhook pod was replaced, with the certificates the apiserver trusts kept
    after_pods = webhook_pods(handle)
    assert after_pods and not after_pods & before_pods
    assert ca_bundles(helm_stack) == before_bundles and len(before_bundles) == 1
    # and once the old pods have drained, the webhook prices by the new memory: 24Gi of 32Gi is
    # 75 units
    for name in before_pods:
        handle.wait_for_pod_gone(SYSTEM_NAMESPACE, name, timeout=60)
    admitted = admitted_eventually(helm_stack, namespace, memory_slice_pod("24Gi"))
    assert admitted["spec"]["containers"][0]["resources"]["limits"] == {QUOTA_RESOURCE: "75"}


def test_uninstall_leaves_no_webhook_configuration_behind(
    helm_stack: HelmStack, handle: ClusterHandle, namespace: str
) -> None:
    # when the release is uninstalled
    helm_stack.uninstall()

    # then no webhook configuration is left, nor any other object of the release
    kubectl = helm_stack.control_plane.kubectl
    for kinds in (
        "mutatingwebhookconfigurations,validatingwebhookconfigurations",
        "clusterroles,clusterrolebindings",
    ):
        left = kubectl("get", kinds, "-l", "app.kubernetes.io/part-of=bf-jupyter", "-o", "name")
        assert left.returncode == 0 and left.stdout.strip() == "", left.stdout + left.stderr
    left = kubectl(
        "-n", SYSTEM_NAMESPACE, "get",
        "deployments,daemonsets,services,configmaps,poddisruptionbudgets,serviceaccounts,roles,rolebindings",
        "-l", "app.kubernetes.io/instance=bf-jupyter", "-o", "name",
    )  # fmt: skip
    assert left.returncode == 0 and left.stdout.strip() == "", left.stdout + left.stderr
    tls = kubectl("-n", SYSTEM_NAMESPACE, "get", "secrets", "-o", "name")
    assert "bf-webhook-tls" not in tls.stdout and "bf-token-service-tls" not in tls.stdout
    # so a Bitfusion pod is no longer judged: created as written, neither refused nor wrapped
    created = handle.api.create("Pod", workload("after", 50, ["true"]), namespace)
    assert ANNOTATION_STATUS not in created["metadata"].get("annotations", {})
