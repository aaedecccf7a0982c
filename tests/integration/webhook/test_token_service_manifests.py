"""The shipped token service: least-privilege RBAC, a locked-down Deployment that reads the webhook's
own configuration and CA, a Service the configured URL names, certificates for it in both
certificate setups, and match conditions that route any pod projecting a token for its audience."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pytest

from bf_jupyter.cluster import certs
from tests.integration.webhook.test_manifests import (
    CLUSTER,
    Obj,
    kustomize,
    match,
    needs_kubectl,
    one,
)
from tests.support.shipped_config import shipped_raw

SERVICE = certs.TOKEN_SERVICE


@pytest.fixture(scope="module")
def rendered() -> list[Obj]:
    return kustomize(CLUSTER)


def _service_settings() -> dict[str, str]:
    settings = shipped_raw()["tokenService"]
    assert isinstance(settings, dict)
    return settings


def test_new_installs_use_the_token_service() -> None:
    assert shipped_raw()["tokenSource"] == "service"


@needs_kubectl
def test_the_token_service_may_review_tokens_read_pods_and_one_secret_only(
    rendered: list[Obj],
) -> None:
    cluster_role = one(rendered, "ClusterRole", SERVICE)
    granted = {(g, r, v) for rule in cluster_role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}  # fmt: skip
    assert granted == {("authentication.k8s.io", "tokenreviews", "create"), ("", "pods", "get")}
    role = one(rendered, "Role", SERVICE)
    assert role["metadata"]["namespace"] == certs.NAMESPACE
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [shipped_raw()["tokenSecret"]],
         "verbs": ["get"]}
    ]  # fmt: skip
    subject = {"kind": "ServiceAccount", "name": SERVICE, "namespace": certs.NAMESPACE}
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = one(rendered, kind, SERVICE)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": SERVICE,
        }
        assert binding["subjects"] == [subject]
    one(rendered, "ServiceAccount", SERVICE)


@needs_kubectl
def test_the_token_service_runs_replicated_probed_and_locked_down(rendered: list[Obj]) -> None:
    deployment = one(rendered, "Deployment", SERVICE)
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SERVICE and pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["bf-jupyter"] and container["args"][0] == "token-service"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one(rendered, "PodDisruptionBudget", SERVICE)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = one(rendered, "Service", SERVICE)
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
    ]
    # the URL the fetch containers call is that Service
    url = urlsplit(_service_settings()["url"])
    assert url.scheme == "https" and url.hostname in certs.service_names(SERVICE, certs.NAMESPACE)
    assert url.port in (None, 443)


@needs_kubectl
def test_both_deployments_read_the_same_configuration_and_ca(rendered: list[Obj]) -> None:
    ca_file = PurePosixPath(_service_settings()["caFile"])
    config_map = one(rendered, "ConfigMap")["metadata"]["name"]
    for name in (certs.SERVICE, SERVICE):
        pod = one(rendered, "Deployment", name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        ca = volumes[mounts[str(ca_file.parent)]]["secret"]
        assert ca["secretName"] == certs.TOKEN_SERVICE_TLS_SECRET
        assert ca["items"] == [{"key": "ca.crt", "path": ca_file.name}]
        config = volumes[mounts["/etc/bf-webhook/config"]]
        assert config["configMap"]["name"] == config_map
    token_service = one(rendered, "Deployment", SERVICE)["spec"]["template"]["spec"]
    tls = {v["name"]: v for v in token_service["volumes"]}["tls"]
    assert tls["secret"]["secretName"] == certs.TOKEN_SERVICE_TLS_SECRET
    # secret mode needs no token service: the webhook still starts without its Secret
    webhook = one(rendered, "Deployment", certs.SERVICE)["spec"]["template"]["spec"]
    assert {v["name"]: v for v in webhook["volumes"]}["token-service-ca"]["secret"]["optional"]


@needs_kubectl
def test_cert_manager_issues_the_token_services_certificate_from_the_webhooks_ca() -> None:
    objects = kustomize(CLUSTER / "overlays" / "cert-manager")
    serving = one(objects, "Certificate", "bf-token-service-serving")
    assert serving["spec"]["secretName"] == certs.TOKEN_SERVICE_TLS_SECRET
    assert serving["spec"]["dnsNames"] == certs.service_names(SERVICE, certs.NAMESPACE)
    webhook = one(objects, "Certificate", "bf-webhook-serving")
    assert serving["spec"]["issuerRef"] == webhook["spec"]["issuerRef"]


@needs_kubectl
@pytest.mark.parametrize("audience", ["bf-jupyter-token-service", "https://kubernetes.default.svc"])
def test_a_pod_projecting_a_token_for_the_service_is_validated(
    rendered: list[Obj], audience: str
) -> None:
    volume = {
        "name": "mine",
        "projected": {"sources": [{"serviceAccountToken": {"audience": audience}}]},
    }
    pod = {
        "metadata": {},
        "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": [volume]},
    }
    validating = one(rendered, "ValidatingWebhookConfiguration")
    assert match(validating, pod) is (audience == _service_settings()["audience"])
