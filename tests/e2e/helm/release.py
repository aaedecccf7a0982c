"""The project's cluster side installed with its Helm chart, as the README's "Deploy with Helm" says.

``HelmStack`` is ``BitfusionStack`` (a process-kubelet node, the kube-proxy stand-in, the simulated
client image) with the chart in place of ``kubectl apply -k``:

    kubectl create namespace bf-system
    kubectl label namespace bf-system pod-security.kubernetes.io/enforce=privileged
    kubectl -n bf-system create secret generic bitfusion-secret ...
    helm install bf-jupyter cluster/helm/bf-jupyter -n bf-system --wait

It runs on a control plane of its own: the session's ``bitfusion_stack`` deploys the same webhooks
(cluster-wide objects of the same names) with kustomize, and two sets of webhooks would both judge
every Bitfusion pod. Stopping it uninstalls the release (when a test did not), then the stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support.helm_chart import CHART, RELEASE, Helm
from tests.support.stack import SYSTEM_NAMESPACE, BitfusionStack

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane

INSTALL_TIMEOUT = "300s"


class HelmStack(BitfusionStack):
    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__(control_plane)
        (self.root / "helm-home").mkdir()
        self.helm = Helm(self.root / "helm-home", control_plane.kubeconfig)

    def _deploy(self) -> None:
        self._kubectl("create", "namespace", SYSTEM_NAMESPACE)
        self._kubectl(
            "label", "namespace", SYSTEM_NAMESPACE, "pod-security.kubernetes.io/enforce=privileged"
        )
        self._create_token_secret()
        self.install_or_upgrade("install")

    def install_or_upgrade(self, verb: str, *options: str) -> str:
        """``helm install`` or ``helm upgrade`` of the chart into bf-system, waiting until every
        object is ready; returns helm's output."""
        return self.helm.check(
            verb, RELEASE, str(CHART), "--namespace", SYSTEM_NAMESPACE,
            "--wait", "--timeout", INSTALL_TIMEOUT, *options,
            timeout=360,
        )  # fmt: skip

    def uninstall(self) -> str:
        return self.helm.check(
            "uninstall", RELEASE, "--namespace", SYSTEM_NAMESPACE,
            "--wait", "--timeout", INSTALL_TIMEOUT,
            timeout=360,
        )  # fmt: skip

    def _undeploy(self) -> None:
        if self.helm.run("status", RELEASE, "--namespace", SYSTEM_NAMESPACE).returncode == 0:
            self.uninstall()
        super()._undeploy()
