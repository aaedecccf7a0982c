"""The hub's RBAC as shipped: ``cluster/hub`` renders offline, passes the Kubernetes schemas, serves
any namespace with ``kubectl apply -k cluster/hub -n NS``, grants no wildcard and nothing about
Secrets, and the README's lines name what exists. (Whether the rules are exactly what the hub
calls is checked end to end in ``tests/e2e/hub``.)"""

from __future__ import annotations

import re
import shlex
from typing import Any

import kubernetes_validate
import pytest

from tests.integration.webhook.test_manifests import CLUSTER, REPO, kustomize, needs_kubectl

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def shipped() -> list[Obj]:
    return kustomize(CLUSTER / "hub")


@needs_kubectl
def test_the_hub_rbac_passes_the_schemas_and_serves_any_namespace(shipped: list[Obj]) -> None:
    for obj in shipped:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        assert "namespace" not in obj["metadata"], obj["metadata"]
    assert sorted(o["kind"] for o in shipped) == [
        "ClusterRole", "Role", "RoleBinding", "ServiceAccount",
    ]  # fmt: skip
    for role in (o for o in shipped if o["kind"] in ("Role", "ClusterRole")):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert "secrets" not in rule["resources"]  # the hub never reads kernel keys or tokens


@needs_kubectl
def test_the_readme_binds_what_the_manifests_define(shipped: list[Obj]) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "kubectl apply -k cluster/hub -n jhub" in readme
    command = re.search(
        r"kubectl create clusterrolebinding bf-jupyter-hub(?:[^\n]*\\\n)*[^\n]*", readme
    )
    assert command is not None
    words = shlex.split(command.group(0).replace("\\\n", " "))
    options = dict(w.removeprefix("--").split("=", 1) for w in words if w.startswith("--"))
    (cluster_role,) = [o for o in shipped if o["kind"] == "ClusterRole"]
    (account,) = [o for o in shipped if o["kind"] == "ServiceAccount"]
    assert options["clusterrole"] == cluster_role["metadata"]["name"]
    assert options["serviceaccount"] == f"jhub:{account['metadata']['name']}"
