"""The Helm chart (cluster/helm/bf-jupyter) with the pinned helm, offline: for the default values it
renders the objects ``kubectl kustomize cluster/`` renders (one source of truth: a change to either
side that the other lacks fails here), ``helm lint --strict`` is clean, a typo in values fails naming
its path, and the settings users change reach the objects they mean."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from tests.cluster.binaries import find_binaries
from tests.support.helm_chart import CHART, Helm, comparable, identity

Obj = dict[str, Any]
CLUSTER = CHART.parents[1]
# What only one side renders, by design: the Namespace (Helm installs into an existing one, or
# `--create-namespace`), and the certificates the chart makes at install (kustomize's come from
# `bf-jupyter certs` and `kubectl create secret`, README "Deploy").
ONLY_KUSTOMIZE = {("Namespace", "", "bf-system")}
ONLY_HELM = {
    ("Secret", "bf-system", "bf-webhook-tls"),
    ("Secret", "bf-system", "bf-token-service-tls"),
}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tmp_path_factory.mktemp("helm-home"))


def kustomize(folder: Path, namespace: str | None = None) -> list[Obj]:
    rendered = subprocess.run(
        [str(find_binaries().kubectl), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    for obj in objects:
        if namespace is not None:
            obj["metadata"]["namespace"] = namespace
    return objects


def by_identity(objects: list[Obj]) -> dict[tuple[str, str, str], Obj]:
    found = {identity(obj): comparable(obj) for obj in objects}
    assert len(found) == len(objects), "two objects of one kind share a name"
    return found


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def images(objects: list[Obj]) -> list[str]:
    found = []
    for obj in objects:
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            found.append(container["image"])
    return found


def webhook_config(objects: list[Obj]) -> Obj:
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert isinstance(config, dict)
    return config


# ----- one source of truth -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "options"),
    [("", ()), ("overlays/cert-manager", ("--set", "certificates.source=cert-manager"))],
    ids=["self-managed-certificates", "cert-manager"],
)
def test_default_values_render_the_objects_kustomize_renders(
    helm: Helm, folder: str, options: tuple[str, ...]
) -> None:
    # given both renderings of the cluster side
    charted = by_identity(helm.render(*options))
    kustomized = by_identity(kustomize(CLUSTER / folder))
    only_helm = ONLY_HELM if not options else set()
    # then they hold the same objects, and each object is the same but for Helm's labels
    assert set(charted) - only_helm == set(kustomized) - ONLY_KUSTOMIZE
    for key, obj in kustomized.items():
        if key not in ONLY_KUSTOMIZE:
            assert charted[key] == obj, f"{key} differs between the chart and cluster/{folder}"


def test_notebook_namespaces_get_what_cluster_notebook_makes(helm: Helm) -> None:
    # given two notebook namespaces in the values
    objects = helm.render("--set", "notebook.namespaces={team-a,team-b}")
    for namespace in ("team-a", "team-b"):
        # then each holds exactly what `kubectl apply -k cluster/notebook -n NS` makes
        own = by_identity([o for o in objects if o["metadata"].get("namespace") == namespace])
        assert own == by_identity(kustomize(CLUSTER / "notebook", namespace))
        # and its service account is bound to the node-reading cluster role, as the README says
        binding = one(objects, "ClusterRoleBinding", f"bf-jupyter-notebook-nodes-{namespace}")
        assert binding["roleRef"]["name"] == "bf-jupyter-notebook-nodes"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "bf-jupyter-notebook", "namespace": namespace}
        ]


# ----- lint and schema ---------------------------------------------------------------------------


def test_helm_lint_strict_is_clean(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("webhook.replicaz=3", "/webhook"),
        ("webhook.failurePolicy.validate=Never", "/webhook/failurePolicy/validate"),
        ("bitfusion.tokenSource=vault", "/bitfusion/tokenSource"),
        ("devicePlugin.unitsPerGpu=0", "/devicePlugin/unitsPerGpu"),
        ("bitfusion.perGpuMemory=16 GB", "/bitfusion/perGpuMemory"),
    ],
)
def test_a_bad_value_fails_naming_its_path(helm: Helm, setting: str, path: str) -> None:
    result = helm.run("template", "bf-jupyter", str(CHART), "--set", setting)
    assert result.returncode != 0
    assert path in result.stderr, result.stderr
    if "replicaz" in setting:
        assert "replicaz" in result.stderr, result.stderr


def test_a_default_client_missing_from_the_table_fails_naming_both(helm: Helm) -> None:
    result = helm.run(
        "template", "bf-jupyter", str(CHART), "--set", "bitfusion.defaultClient.os=rhel9"
    )
    assert result.returncode != 0
    assert "bitfusion.defaultClient {os: rhel9, version: 450} is not in bitfusion.clients" in (
        result.stderr
    )


def test_secret_certificates_need_the_ca_bundle(helm: Helm) -> None:
    result = helm.run("template", "bf-jupyter", str(CHART), "--set", "certificates.source=secrets")
    assert result.returncode != 0
    assert "caBundle" in result.stderr, result.stderr
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    objects = helm.render(
        "--set", "certificates.source=secrets", "--set", f"certificates.caBundle={ca}"
    )
    assert not [o for o in objects if o["kind"] == "Secret"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (webhook,) = one(objects, kind, webhook_name(kind))["webhooks"]
        assert webhook["clientConfig"]["caBundle"] == ca


def webhook_name(kind: str) -> str:
    return "bf-jupyter-mutate" if kind.startswith("Mutating") else "bf-jupyter-validate"


# ----- what users change -------------------------------------------------------------------------


def test_helm_certificates_are_signed_by_the_ca_bundle_for_the_service_names(helm: Helm) -> None:
    objects = helm.render(namespace="gpu-system")
    bundles = {
        one(objects, kind, webhook_name(kind))["webhooks"][0]["clientConfig"]["caBundle"]
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
    }
    (bundle,) = bundles
    ca = x509.load_pem_x509_certificate(base64.b64decode(bundle))
    for secret, service in (
        ("bf-webhook-tls", "bf-webhook"),
        ("bf-token-service-tls", "bf-token-service"),
    ):
        data = one(objects, "Secret", secret)["data"]
        assert base64.b64decode(data["ca.crt"]) == base64.b64decode(bundle)
        cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert f"{service}.gpu-system.svc" in names.get_values_for_type(x509.DNSName)


def test_the_release_namespace_reaches_every_reference(helm: Helm) -> None:
    objects = helm.render(namespace="gpu-system")
    assert {o["metadata"].get("namespace", "") for o in objects} == {"", "gpu-system"}
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (webhook,) = one(objects, kind, webhook_name(kind))["webhooks"]
        assert webhook["clientConfig"]["service"]["namespace"] == "gpu-system"
        assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == [
            "kube-system",
            "gpu-system",
        ]
    for name in ("bf-webhook", "bf-token-service"):
        (subject,) = one(objects, "ClusterRoleBinding", name)["subjects"]
        assert subject["namespace"] == "gpu-system"
    assert (
        webhook_config(objects)["tokenService"]["url"] == "https://bf-token-service.gpu-system.svc"
    )


def test_an_air_gapped_registry_prefixes_every_image(helm: Helm) -> None:
    objects = helm.render("--set", "imageRegistry=registry.example.com:5000/gpu")
    prefix = "registry.example.com:5000/gpu/"
    assert images(objects) and all(image.startswith(prefix) for image in images(objects))
    config = webhook_config(objects)
    assert config["guardImage"] == prefix + "bf-jupyter:0.1.0"
    assert all(client["image"].startswith(prefix) for client in config["clients"])


def test_settings_reach_the_objects_they_name(helm: Helm) -> None:
    objects = helm.render(
        "--set", "bitfusion.perGpuMemory=40Gi",
        "--set", "bitfusion.maxGpusPerServer=8",
        "--set", "webhook.failurePolicy.validate=Ignore",
        "--set", "webhook.replicas=3",
        "--set", "webhook.nodeSelector.role=system",
        "--set-string", "devicePlugin.nodeSelector.gpu-client=true",
        "--set", "devicePlugin.unitsPerGpu=10",
    )  # fmt: skip
    config = webhook_config(objects)
    assert (config["perGpuMemory"], config["maxGpusPerServer"]) == ("40Gi", 8)
    (validate,) = one(objects, "ValidatingWebhookConfiguration", "bf-jupyter-validate")["webhooks"]
    assert validate["failurePolicy"] == "Ignore"
    webhook = one(objects, "Deployment", "bf-webhook")["spec"]
    assert webhook["replicas"] == 3
    assert webhook["template"]["spec"]["nodeSelector"] == {"role": "system"}
    plugin = one(objects, "DaemonSet", "bf-device-plugin")["spec"]["template"]["spec"]
    assert plugin["nodeSelector"] == {"gpu-client": "true"}
    assert plugin["containers"][0]["args"][-2:] == ["--units-per-gpu", "10"]


def test_a_config_change_renames_the_config_map_so_both_deployments_roll(helm: Helm) -> None:
    def config_volumes(objects: list[Obj]) -> set[str]:
        return {
            volume["configMap"]["name"]
            for name in ("bf-webhook", "bf-token-service")
            for volume in one(objects, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
            if "configMap" in volume
        }

    before = config_volumes(helm.render())
    after = config_volumes(helm.render("--set", "bitfusion.perGpuMemory=32Gi"))
    assert len(before) == len(after) == 1 and before != after


def test_the_secret_token_source_deploys_no_token_service(helm: Helm) -> None:
    objects = helm.render(
        "--set", "bitfusion.tokenSource=secret", "--set", "devicePlugin.enabled=false"
    )
    names = {o["metadata"]["name"] for o in objects}
    assert not {n for n in names if n.startswith("bf-token-service")}
    assert "bf-device-plugin" not in names
    assert webhook_config(objects)["tokenSource"] == "secret"


@pytest.mark.parametrize(
    "options",
    [(), ("--set", "certificates.source=secrets", "--set", "certificates.caBundle=Zm9v")],
)
def test_every_rendered_object_passes_the_kubernetes_schemas(
    helm: Helm, options: tuple[str, ...]
) -> None:
    for obj in helm.render("--set", "notebook.namespaces={team-a}", *options):
        kubernetes_validate.validate(obj, "1.30.0", strict=True)
