"""The notebook server's shipped RBAC, deployed as the README says, and compared with what the server
actually calls (read from the test cluster's audit log, with RBAC's verdict on each call).

``deploy(control_plane, namespace)`` runs, with the pinned kubectl:

    kubectl apply -k cluster/notebook -n NAMESPACE
    kubectl create clusterrolebinding bf-jupyter-notebook-nodes-NAMESPACE \\
        --clusterrole=bf-jupyter-notebook-nodes --serviceaccount=NAMESPACE:bf-jupyter-notebook
    (optional) the same for --clusterrole=bf-jupyter-notebook-pods
    kubectl -n NAMESPACE create token bf-jupyter-notebook

and returns a kubeconfig with that token, as the server's pod would authenticate.
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.cluster.binaries import find_binaries

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
SERVICE_ACCOUNT = "bf-jupyter-notebook"
NODES_ROLE = "bf-jupyter-notebook-nodes"
PODS_ROLE = "bf-jupyter-notebook-pods"
# (verb, resource, scope): scope "namespace" for the server's own namespace, "cluster" otherwise
Permission = tuple[str, str, str]


def kustomize(folder: Path) -> list[Obj]:
    rendered = subprocess.run(
        [str(find_binaries().kubectl), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@functools.cache
def shipped_namespaced() -> tuple[Obj, ...]:
    """``cluster/notebook``: the service account, its Role and RoleBinding (no namespace set)."""
    return tuple(kustomize(REPO / "cluster" / "notebook"))


@functools.cache
def shipped_cluster_roles() -> tuple[Obj, ...]:
    """The notebook ClusterRoles among what ``kubectl apply -k cluster/`` creates."""
    return tuple(
        obj
        for obj in kustomize(REPO / "cluster" / "base")
        if obj["kind"] == "ClusterRole" and obj["metadata"]["name"] in (NODES_ROLE, PODS_ROLE)
    )


def cluster_role_binding(role: str, namespace: str) -> Obj:
    """What ``kubectl create clusterrolebinding ROLE-NS --clusterrole=ROLE
    --serviceaccount=NS:bf-jupyter-notebook`` creates."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{role}-{namespace}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}],
    }


@dataclass(frozen=True)
class NotebookIdentity:
    namespace: str
    user: str  # system:serviceaccount:NS:bf-jupyter-notebook
    kubeconfig: Path


@dataclass(frozen=True)
class Call:
    """One API request of the server, as the apiserver's audit log records it."""

    verb: str
    resource: str  # with its subresource: pods/log
    namespace: str | None
    allowed: bool

    def describe(self) -> str:
        return f"{self.verb} {self.resource}" + (f" in {self.namespace}" if self.namespace else "")


def deploy(
    plane: ControlPlane, namespace: str, folder: Path, *, pod_usage: bool = True
) -> NotebookIdentity:
    """Grant the shipped RBAC in ``namespace`` (with the optional pods ClusterRole when
    ``pod_usage``); return the service account's identity and a kubeconfig (written in ``folder``)."""

    def kubectl(*args: str) -> str:
        result = plane.kubectl(*args)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    kubectl("apply", "-k", str(REPO / "cluster" / "notebook"), "-n", namespace)
    roles = [NODES_ROLE, PODS_ROLE] if pod_usage else [NODES_ROLE]
    for role in roles:
        kubectl(
            "create", "clusterrolebinding", f"{role}-{namespace}", f"--clusterrole={role}",
            f"--serviceaccount={namespace}:{SERVICE_ACCOUNT}",
        )  # fmt: skip
    token = kubectl("-n", namespace, "create", "token", SERVICE_ACCOUNT, "--duration=1h").strip()
    kubeconfig = folder / f"{namespace}-notebook.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "test",
                        "cluster": {
                            "server": plane.server,
                            "certificate-authority": str(plane.ca_file),
                        },
                    }
                ],
                "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "notebook",
                        "context": {
                            "cluster": "test",
                            "user": SERVICE_ACCOUNT,
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": "notebook",
            }
        )
    )
    kubeconfig.chmod(0o600)
    user = f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"
    return NotebookIdentity(namespace, user, kubeconfig)


def undeploy(plane: ControlPlane, namespace: str) -> None:
    """The cluster-scoped bindings ``deploy`` made (the namespace takes the rest with it)."""
    for role in (NODES_ROLE, PODS_ROLE):
        plane.kubectl("delete", "clusterrolebinding", f"{role}-{namespace}", "--ignore-not-found")


def revoke_pods_role(plane: ControlPlane, namespace: str) -> None:
    """Delete the optional pods binding and wait until the apiserver's authorizer has seen it go."""
    plane.kubectl("delete", "clusterrolebinding", f"{PODS_ROLE}-{namespace}")
    user = f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"
    deadline = time.monotonic() + 30
    while (
        plane.kubectl("auth", "can-i", "list", "pods", "-A", f"--as={user}").stdout.strip() != "no"
    ):
        assert time.monotonic() < deadline, "the pods binding was still in force after 30 s"
        time.sleep(0.05)


def calls(plane: ControlPlane, user: str) -> list[Call]:
    """Every request ``user`` made so far, from the audit log."""
    found = []
    for event in plane.audit_events(user):
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        decision = (event.get("annotations") or {}).get("authorization.k8s.io/decision")
        found.append(Call(event["verb"], resource, ref.get("namespace"), decision == "allow"))
    return found


def granted(*, pod_usage: bool = True) -> set[Permission]:
    """Every (verb, resource, scope) the shipped rules give a notebook server."""
    (role,) = [o for o in shipped_namespaced() if o["kind"] == "Role"]
    permissions = _expand(role["rules"], "namespace")
    for cluster_role in shipped_cluster_roles():
        if cluster_role["metadata"]["name"] == PODS_ROLE and not pod_usage:
            continue
        permissions |= _expand(cluster_role["rules"], "cluster")
    return permissions


def used(records: Iterable[Call]) -> set[Permission]:
    """The (verb, resource, scope) of recorded requests."""
    return {(r.verb, r.resource, "namespace" if r.namespace else "cluster") for r in records}


def _expand(rules: Iterable[Obj], scope: str) -> set[Permission]:
    found: set[Permission] = set()
    for rule in rules:
        assert rule.get("apiGroups") == [""], "the notebook server uses the core API only"
        assert not rule.get("resourceNames"), "no rule is limited to names"
        found |= {(verb, res, scope) for verb in rule["verbs"] for res in rule["resources"]}
    return found
