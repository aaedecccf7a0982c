"""The hub's shipped RBAC (``cluster/hub``), deployed as the README says, and the permissions it
grants, to compare with what the hub called (the apiserver's audit log, ``notebook_rbac.calls``).

``deploy(control_plane, namespace, folder)`` runs, with the pinned kubectl:

    kubectl apply -k cluster/hub -n NAMESPACE
    kubectl create clusterrolebinding bf-jupyter-hub-nodes-NAMESPACE \\
        --clusterrole=bf-jupyter-hub-nodes --serviceaccount=NAMESPACE:bf-jupyter-hub
    kubectl -n NAMESPACE create token bf-jupyter-hub

and returns a kubeconfig with that token, as the hub's pod would authenticate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.support.notebook_rbac import Permission, kustomize

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
SERVICE_ACCOUNT = "bf-jupyter-hub"
NODES_ROLE = "bf-jupyter-hub-nodes"


@dataclass(frozen=True)
class HubIdentity:
    namespace: str
    user: str  # system:serviceaccount:NS:bf-jupyter-hub
    kubeconfig: Path


@functools.cache
def shipped() -> tuple[Obj, ...]:
    return tuple(kustomize(REPO / "cluster" / "hub"))


def granted() -> set[Permission]:
    """Every (verb, resource, scope) the shipped rules give the hub."""
    found: set[Permission] = set()
    for obj in shipped():
        if obj["kind"] not in ("Role", "ClusterRole"):
            continue
        scope = "namespace" if obj["kind"] == "Role" else "cluster"
        for rule in obj["rules"]:
            assert rule.get("apiGroups") == [""], "the hub uses the core API only"
            found |= {(v, r, scope) for v in rule["verbs"] for r in rule["resources"]}
    return found


def deploy(plane: ControlPlane, namespace: str, folder: Path) -> HubIdentity:
    def kubectl(*args: str) -> str:
        result = plane.kubectl(*args)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    kubectl("apply", "-k", str(REPO / "cluster" / "hub"), "-n", namespace)
    kubectl(
        "create", "clusterrolebinding", f"{NODES_ROLE}-{namespace}", f"--clusterrole={NODES_ROLE}",
        f"--serviceaccount={namespace}:{SERVICE_ACCOUNT}",
    )  # fmt: skip
    token = kubectl("-n", namespace, "create", "token", SERVICE_ACCOUNT, "--duration=1h").strip()
    kubeconfig = folder / f"{namespace}-hub.kubeconfig"
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
                        "name": "hub",
                        "context": {
                            "cluster": "test",
                            "user": SERVICE_ACCOUNT,
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": "hub",
            }
        )
    )
    kubeconfig.chmod(0o600)
    return HubIdentity(
        namespace, f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}", kubeconfig
    )


def undeploy(plane: ControlPlane, namespace: str) -> None:
    plane.kubectl("delete", "clusterrolebinding", f"{NODES_ROLE}-{namespace}", "--ignore-not-found")
