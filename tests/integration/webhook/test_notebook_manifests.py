"""The notebook server's RBAC as shipped: ``cluster/notebook`` renders offline, passes the Kubernetes
schemas, works in any namespace with ``kubectl apply -k cluster/notebook -n NS``, grants no wildcard,
and the README's lines name what exists. (Whether the rules are exactly what the server calls is
checked end to end in ``tests/e2e/server``.)"""

from __future__ import annotations

import re
import shlex
from typing import Any

import kubernetes_validate
import pytest

from tests.integration.webhook.test_manifests import CLUSTER, REPO, kustomize, needs_kubectl, one

Obj = dict[str, Any]
NOTEBOOK = CLUSTER / "notebook"
CLUSTER_ROLES = ("bf-jupyter-notebook-nodes", "bf-jupyter-notebook-pods")


@pytest.fixture(scope="module")
def namespaced() -> list[Obj]:
    return kustomize(NOTEBOOK)


@pytest.fixture(scope="module")
def cluster_roles() -> list[Obj]:
    return [
        obj
        for obj in kustomize(CLUSTER)
        if obj["kind"] == "ClusterRole" and obj["metadata"]["name"] in CLUSTER_ROLES
    ]


@needs_kubectl
@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
def test_the_notebook_rbac_passes_the_kubernetes_schemas(
    namespaced: list[Obj], cluster_roles: list[Obj], version: str
) -> None:
    for obj in namespaced + cluster_roles:
        kubernetes_validate.validate(obj, version, strict=True)
    assert sorted(o["kind"] for o in namespaced) == [
        "NetworkPolicy", "Role", "RoleBinding", "ServiceAccount",
    ]  # fmt: skip
    assert sorted(o["metadata"]["name"] for o in cluster_roles) == sorted(CLUSTER_ROLES)


@needs_kubectl
def test_one_kustomization_serves_every_namespace(namespaced: list[Obj]) -> None:
    # kubectl apply -k cluster/notebook -n NS places each object in NS: none may name another
    for obj in namespaced:
        assert "namespace" not in obj["metadata"], obj["metadata"]
    binding = one(namespaced, "RoleBinding", "bf-jupyter-notebook")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bf-jupyter-notebook",
    }  # fmt: skip
    # a ServiceAccount subject without a namespace is the RoleBinding's own
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "bf-jupyter-notebook"}]


@needs_kubectl
def test_the_notebook_rbac_is_least_privilege(
    namespaced: list[Obj], cluster_roles: list[Obj]
) -> None:
    for obj in namespaced + cluster_roles:
        for rule in obj.get("rules", []):
            assert rule["apiGroups"] == [""]
            assert "*" not in rule["verbs"] + rule["resources"]
            assert not {"update", "deletecollection", "escalate", "bind", "impersonate"} & set(
                rule["verbs"]
            )
            assert "pods/exec" not in rule["resources"]
    role = one(namespaced, "Role", "bf-jupyter-notebook")
    assert "get" not in {
        v for r in role["rules"] if r["resources"] == ["secrets"] for v in r["verbs"]
    }
    for cluster_role in cluster_roles:
        assert [(r["resources"], r["verbs"]) for r in cluster_role["rules"]] in (
            [(["nodes"], ["list"])],
            [(["pods"], ["list"])],
        )


def test_the_readme_binds_what_the_manifests_define(
    namespaced: list[Obj], cluster_roles: list[Obj]
) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "kubectl apply -k cluster/notebook -n team-a" in readme
    command = re.search(
        r"kubectl create clusterrolebinding bf-jupyter-notebook(?:[^\n]*\\\n)*[^\n]*", readme
    )
    assert command is not None
    words = shlex.split(command.group(0).replace("\\\n", " "))
    options = dict(w.removeprefix("--").split("=", 1) for w in words if w.startswith("--"))
    assert options["clusterrole"] in CLUSTER_ROLES
    account = one(namespaced, "ServiceAccount")["metadata"]["name"]
    assert options["serviceaccount"] == f"team-a:{account}"
    assert f'c.KubeSpawner.service_account = "{account}"' in readme


@needs_kubectl
def test_only_the_notebook_server_pod_reaches_the_kernel_pods(namespaced: list[Obj]) -> None:
    from bf_jupyter.contract import LABEL_COMPONENT, LABEL_NAME

    policy = one(namespaced, "NetworkPolicy", "bf-jupyter-kernels")["spec"]
    # it selects exactly the kernel pods the pod builder labels
    assert policy["podSelector"]["matchLabels"] == {
        LABEL_NAME: "bf-jupyter",
        LABEL_COMPONENT: "kernel",
    }
    assert policy["policyTypes"] == ["Ingress"]
    # and admits one peer: pods of its own namespace labelled as the notebook server
    (rule,) = policy["ingress"]
    assert rule == {
        "from": [{"podSelector": {"matchLabels": {"bf-jupyter/role": "notebook-server"}}}]
    }
    readme = (REPO / "README.md").read_text()
    assert "bf-jupyter/role: notebook-server" in readme
