"""The notebook server's shipped RBAC, deployed as the README says, and compared with what the server
actually calls.

``deploy(cluster, namespace)`` does on the emulated cluster what these lines do on a real one:

    kubectl apply -k cluster/notebook -n NAMESPACE
    kubectl create clusterrolebinding bf-jupyter-notebook-nodes-NAMESPACE \\
        --clusterrole=bf-jupyter-notebook-nodes --serviceaccount=NAMESPACE:bf-jupyter-notebook
    (optional) the same for --clusterrole=bf-jupyter-notebook-pods

and returns a kubeconfig that authenticates as that service account, as the server's pod would.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.emulator.webhook_config import kubectl_path

if TYPE_CHECKING:
    from tests.emulator.authorization import AuditRecord
    from tests.emulator.cluster import EmulatedCluster

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[3]
SERVICE_ACCOUNT = "bf-jupyter-notebook"
NODES_ROLE = "bf-jupyter-notebook-nodes"
PODS_ROLE = "bf-jupyter-notebook-pods"
# (verb, resource, scope): scope "namespace" for the server's own namespace, "cluster" otherwise
Permission = tuple[str, str, str]


def kustomize(folder: Path) -> list[Obj]:
    kubectl = kubectl_path()
    assert kubectl is not None, "kubectl renders the manifests (kubectl kustomize)"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=True
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


def deploy(cluster: EmulatedCluster, namespace: str, *, pod_usage: bool = True) -> NotebookIdentity:
    """Grant the shipped RBAC in ``namespace`` (with the optional pods ClusterRole when
    ``pod_usage``); return the service account's identity and kubeconfig."""
    from tests.emulator.authorization import service_account

    objects = [_in_namespace(obj, namespace) for obj in shipped_namespaced()]
    objects += list(shipped_cluster_roles())
    objects.append(cluster_role_binding(NODES_ROLE, namespace))
    if pod_usage:
        objects.append(cluster_role_binding(PODS_ROLE, namespace))
    cluster.grant(objects)
    user = service_account(namespace, SERVICE_ACCOUNT)
    return NotebookIdentity(namespace, user.name, cluster.add_user(user, namespace=namespace))


def granted(*, pod_usage: bool = True) -> set[Permission]:
    """Every (verb, resource, scope) the shipped rules give a notebook server."""
    (role,) = [o for o in shipped_namespaced() if o["kind"] == "Role"]
    permissions = _expand(role["rules"], "namespace")
    for cluster_role in shipped_cluster_roles():
        if cluster_role["metadata"]["name"] == PODS_ROLE and not pod_usage:
            continue
        permissions |= _expand(cluster_role["rules"], "cluster")
    return permissions


def used(records: Iterable[AuditRecord]) -> set[Permission]:
    """The (verb, resource, scope) of recorded requests."""
    return {
        (r.request.verb, r.request.resource, "namespace" if r.request.namespace else "cluster")
        for r in records
    }


def _expand(rules: Iterable[Obj], scope: str) -> set[Permission]:
    found: set[Permission] = set()
    for rule in rules:
        assert rule.get("apiGroups") == [""], "the notebook server uses the core API only"
        assert not rule.get("resourceNames"), "no rule is limited to names"
        found |= {(verb, res, scope) for verb in rule["verbs"] for res in rule["resources"]}
    return found


def _in_namespace(obj: Obj, namespace: str) -> Obj:
    """As ``kubectl apply -n NAMESPACE`` creates a namespaced object that names none."""
    placed = copy.deepcopy(obj)
    placed["metadata"]["namespace"] = namespace
    return placed
