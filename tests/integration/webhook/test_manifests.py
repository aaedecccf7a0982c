"""The shipped deploy: ``kubectl kustomize cluster/`` renders offline, every object passes the
Kubernetes 1.30+ schemas, and the objects say what the webhook and the device plugin need (v1 APIs
only, least privilege, match conditions that send only Bitfusion pods, the same client injection in
the DaemonSet as in pods, images under configurable names)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bf_jupyter.cli import main
from bf_jupyter.cluster import certs
from bf_jupyter.cluster.webhook import injection
from bf_jupyter.cluster.webhook.config import TokenSource
from tests.support.shipped_config import load_shipped_config, shipped_raw

REPO = Path(__file__).parents[3]
CLUSTER = REPO / "cluster"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl (with its built-in kustomize) is not installed: /usr/bin/kubectl",
)
Obj = dict[str, Any]


def kustomize(folder: Path) -> list[Obj]:
    assert KUBECTL is not None
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[Obj]:
    return kustomize(CLUSTER)


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in found])
    return found[0]


def containers_of(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    for obj in objects:
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            yield obj, container


# ----- schemas -----------------------------------------------------------------------------------


@needs_kubectl
@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
def test_every_rendered_object_passes_the_kubernetes_schemas(
    rendered: list[Obj], version: str
) -> None:
    examples = [
        yaml.safe_load(p.read_text()) for p in sorted((CLUSTER / "examples").glob("*.yaml"))
    ]
    for obj in rendered + examples:
        kubernetes_validate.validate(obj, version, strict=True)
    assert {o["kind"] for o in rendered} >= {
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Service",
        "Deployment", "PodDisruptionBudget", "DaemonSet", "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }  # fmt: skip


@needs_kubectl
def test_the_cert_manager_overlay_renders_and_passes_the_schemas() -> None:
    objects = kustomize(CLUSTER / "overlays" / "cert-manager")
    own = [o for o in objects if not o["apiVersion"].startswith("cert-manager.io/")]
    for obj in own:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)
    serving = one(objects, "Certificate", "bf-webhook-serving")
    assert serving["spec"]["secretName"] == certs.TLS_SECRET
    assert serving["spec"]["dnsNames"] == certs.service_names(certs.SERVICE, certs.NAMESPACE)
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        annotations = one(objects, kind)["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == "bf-system/bf-webhook-serving"


@needs_kubectl
def test_certs_output_gives_both_webhooks_the_ca_bundle(tmp_path: Path) -> None:
    # given a copy of cluster/ with certificates written by the command, as the README says
    copy = tmp_path / "cluster"
    shutil.copytree(CLUSTER, copy)
    assert (
        main(
            [
                "certs",
                "--namespace",
                "bf-system",
                "--service",
                "bf-webhook",
                "--out",
                str(copy / "certs"),
            ]
        )
        == 0
    )
    # then both rendered webhook configurations carry the CA that signed the serving certificate
    objects = kustomize(copy)
    ca = (copy / "certs" / "ca.crt").read_bytes()
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (webhook,) = one(objects, kind)["webhooks"]
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == ca
        assert webhook["clientConfig"]["service"] == {
            "name": certs.SERVICE, "namespace": certs.NAMESPACE,
            "path": "/mutate" if kind.startswith("Mutating") else "/validate", "port": 443,
        }  # fmt: skip


# ----- webhook configurations --------------------------------------------------------------------


@needs_kubectl
def test_webhook_configurations_are_v1_with_the_required_settings(rendered: list[Obj]) -> None:
    mutating = one(rendered, "MutatingWebhookConfiguration", certs.MUTATING_CONFIGURATION)
    validating = one(rendered, "ValidatingWebhookConfiguration", certs.VALIDATING_CONFIGURATION)
    for configuration, name, failure in (
        (mutating, certs.MUTATING_WEBHOOK, "Ignore"),
        (validating, certs.VALIDATING_WEBHOOK, "Fail"),
    ):
        assert configuration["apiVersion"] == "admissionregistration.k8s.io/v1"
        (webhook,) = configuration["webhooks"]
        assert webhook["name"] == name
        assert webhook["sideEffects"] == "None" and webhook["timeoutSeconds"] == 10
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["failurePolicy"] == failure
        creation = {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
        debug = {**creation, "operations": ["UPDATE"], "resources": ["pods/ephemeralcontainers"]}
        # validation also judges `kubectl debug`'s ephemeral containers; mutation only creations
        assert webhook["rules"] == ([creation] if failure == "Ignore" else [creation, debug])
        assert webhook["namespaceSelector"]["matchExpressions"] == [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system", "bf-system"],
            }
        ]
    assert mutating["webhooks"][0]["reinvocationPolicy"] == "IfNeeded"


def match(configuration: Obj, pod: Obj) -> bool:
    """Evaluate a webhook's matchConditions with a Python CEL implementation (all must hold)."""
    import celpy
    from celpy.adapter import json_to_cel

    environment = celpy.Environment()
    activation = {"object": json_to_cel(pod)}
    return all(
        bool(environment.program(environment.compile(c["expression"])).evaluate(activation))
        for c in configuration["webhooks"][0]["matchConditions"]
    )


def pod(annotations: dict[str, str] | None = None, **resources: dict[str, str]) -> Obj:
    """A pod with one container, and an init container when ``init_limits`` is given."""
    container: Obj = {"name": "c", "image": "i", "resources": {}}
    for section in ("limits", "requests"):
        if section in resources:
            container["resources"][section] = resources[section]
    spec: Obj = {"containers": [container]}
    if "init_limits" in resources:
        spec["initContainers"] = [
            {"name": "i", "image": "i", "resources": {"limits": resources["init_limits"]}}
        ]
    return {"metadata": {"annotations": annotations} if annotations else {}, "spec": spec}


def with_spec(container: Obj | None = None, **spec: Any) -> Obj:
    """A plain pod whose one container gets ``container``'s fields and whose spec gets ``spec``."""
    built = pod(limits={"cpu": "1"})
    built["spec"]["containers"][0].update(container or {})
    built["spec"].update(spec)
    return built


# pod → (sent to the mutating webhook, sent to the validating webhook)
PODS = {
    "plain": (pod(limits={"cpu": "1"}), False, False),
    "other annotations": (pod({"team": "x"}), False, False),
    "managed": (pod({"auto-management/bitfusion": "all"}), True, True),
    "keys without annotation": (pod(requests={"bitfusion.io/gpu-amount": "1"}), False, True),
    "mutated": (
        pod({"auto-management/status": "injected"}, limits={"bitfusion.io/gpu": "50"}),
        False,
        True,
    ),
    "init container": (pod(init_limits={"bitfusion.io/gpu-percent": "5"}), False, True),
    "slice annotation only": (pod({"slice.bitfusion.io/c": "1x10%"}), False, True),
    "unrelated secret volume": (
        with_spec(volumes=[{"name": "s", "secret": {"secretName": "other"}}]),
        False,
        False,
    ),
    "injected volume name": (
        with_spec(volumes=[{"name": "bf-jupyter-token", "emptyDir": {}}]),
        False,
        True,
    ),
    "token Secret under another name": (
        with_spec(volumes=[{"name": "x", "secret": {"secretName": "bitfusion-secret"}}]),
        False,
        True,
    ),
    "projected token Secret": (
        with_spec(
            volumes=[
                {
                    "name": "x",
                    "projected": {
                        "sources": [
                            {"configMap": {"name": "c"}},
                            {"secret": {"name": "bitfusion-secret"}},
                        ]
                    },
                }
            ]
        ),
        False,
        True,
    ),
    "envFrom the token Secret": (
        with_spec(container={"envFrom": [{"secretRef": {"name": "bitfusion-secret"}}]}),
        False,
        True,
    ),
    "env from another Secret": (
        with_spec(container={"envFrom": [{"secretRef": {"name": "x"}}, {"configMapRef": {}}]}),
        False,
        False,
    ),
    "debug container reading the token": (
        with_spec(
            ephemeralContainers=[
                {
                    "name": "debug",
                    "image": "busybox",
                    "env": [
                        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "bitfusion-secret"}}},
                    ],
                }
            ]
        ),
        False,
        True,
    ),
    "debug container without Bitfusion": (
        with_spec(ephemeralContainers=[{"name": "debug", "image": "busybox"}]),
        False,
        False,
    ),
}


@needs_kubectl
@pytest.mark.parametrize(("pod", "mutate", "validate"), PODS.values(), ids=PODS.keys())
def test_match_conditions_send_only_pods_that_ask_for_bitfusion(
    rendered: list[Obj], pod: Obj, mutate: bool, validate: bool
) -> None:
    assert match(one(rendered, "MutatingWebhookConfiguration"), pod) is mutate
    assert match(one(rendered, "ValidatingWebhookConfiguration"), pod) is validate


@needs_kubectl
def test_match_conditions_name_the_configured_token_secret(rendered: list[Obj]) -> None:
    raw = shipped_raw()
    (condition,) = one(rendered, "ValidatingWebhookConfiguration")["webhooks"][0]["matchConditions"]
    named = set(re.findall(r"== '([^']+)'", condition["expression"]))
    assert named == {raw["tokenSecret"], raw["tokenService"]["audience"]}  # type: ignore[index]


# ----- security ----------------------------------------------------------------------------------


@needs_kubectl
def test_rbac_is_least_privilege_upstream_defect_9(rendered: list[Obj]) -> None:
    role = one(rendered, "ClusterRole", "bf-webhook")
    granted = {(r["resources"][0], v) for r in role["rules"] for v in r["verbs"]}
    assert granted == {("resourcequotas", "list"), ("nodes", "list"), ("secrets", "get")}
    (secrets,) = [r for r in role["rules"] if r["resources"] == ["secrets"]]
    assert secrets["resourceNames"] == [shipped_raw()["tokenSecret"]]
    for obj in rendered:
        if obj["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            assert obj["roleRef"]["name"] != "cluster-admin"
        for rule in obj.get("rules", []):
            assert "*" not in rule["verbs"] + rule["resources"] + rule.get("apiGroups", [])
    device_plugin = one(rendered, "DaemonSet", "bf-device-plugin")["spec"]["template"]["spec"]
    assert device_plugin["automountServiceAccountToken"] is False


@needs_kubectl
def test_only_current_apis_upstream_defect_8(rendered: list[Obj]) -> None:
    assert not [
        o["apiVersion"] for o in rendered if "beta" in o["apiVersion"] or "alpha" in o["apiVersion"]
    ]
    assert "PodSecurityPolicy" not in {o["kind"] for o in rendered}
    assert "CertificateSigningRequest" not in {o["kind"] for o in rendered}


@needs_kubectl
def test_the_webhook_runs_replicated_probed_and_locked_down(rendered: list[Obj]) -> None:
    deployment = one(rendered, "Deployment", "bf-webhook")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["bf-jupyter"] and container["args"][0] == "webhook"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert (
        container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    )
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one(rendered, "PodDisruptionBudget", "bf-webhook")
    assert (
        pdb["spec"]["minAvailable"] == 1
        and pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    )
    service = one(rendered, "Service", certs.SERVICE)
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == certs.TLS_SECRET
    config_map = one(rendered, "ConfigMap")
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_map["metadata"]["name"].startswith("bf-webhook-config-")  # hashed: edits roll out


@needs_kubectl
def test_images_come_only_from_configurable_names(rendered: list[Obj]) -> None:
    settings = yaml.safe_load((CLUSTER / "base" / "kustomization.yaml").read_text())
    configurable = {f"{i['newName']}:{i['newTag']}" for i in settings["images"]}
    used = {c["image"] for _, c in containers_of(rendered)}
    assert used == configurable
    for _, container in containers_of(rendered):
        assert container["imagePullPolicy"] == "IfNotPresent"


def test_the_guard_image_is_the_deployed_bf_jupyter_image() -> None:
    settings = yaml.safe_load((CLUSTER / "base" / "kustomization.yaml").read_text())
    (image,) = [i for i in settings["images"] if i["name"] == "bf-jupyter"]
    assert shipped_raw()["guardImage"] == f"{image['newName']}:{image['newTag']}"


# ----- the device plugin gets the client like an injected pod --------------------------------------


@needs_kubectl
def test_the_device_plugin_daemonset_injects_the_client_like_the_webhook(
    rendered: list[Obj], tmp_path: Path
) -> None:
    config = load_shipped_config(tmp_path)
    build = config.client_for({})
    spec = one(rendered, "DaemonSet", "bf-device-plugin")["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    # bf-system holds the token Secret: the device plugin copies it as secret mode does
    expected = injection.init_container(build, config, source=TokenSource.SECRET)
    assert init == expected  # same image, script, arguments, mounts, resources, security
    volumes = {v["name"]: v for v in spec["volumes"]}
    for volume in injection.volumes(config, source=TokenSource.SECRET):
        assert volumes[volume["name"]] == volume
    (plugin,) = spec["containers"]
    mounts = [m for m in plugin["volumeMounts"] if m["name"].startswith("bf-jupyter-")]
    assert mounts == injection.workload_mounts(build, config)
    env = {e["name"]: e["value"] for e in plugin["env"]}
    assert env["BF_BITFUSION_BIN"] == build.binary and env["LD_LIBRARY_PATH"] == build.library_path
    assert plugin["command"] == ["bf-jupyter"]
    assert plugin["args"] == [
        "device-plugin", "--plugin-dir", "/var/lib/kubelet/device-plugins",
        "--resource-name", "bitfusion.io/gpu", "--units-per-gpu", "100",
    ]  # fmt: skip
    # units per GPU of the real pool, not a fixed device count (upstream defect 11)


# ----- the image ---------------------------------------------------------------------------------


def test_the_image_installs_exactly_the_cluster_extra(tmp_path: Path) -> None:
    # the Dockerfile reads the cluster extra from pyproject.toml; run that same line here
    dockerfile = (CLUSTER / "images" / "Dockerfile").read_text()
    line = next(part for part in dockerfile.split("&&") if "tomllib" in part)
    command = line.split('python -c "', 1)[1].rsplit('"', 1)[0]
    result = subprocess.run(
        [sys.executable, "-c", command], cwd=REPO, capture_output=True, text=True, check=True
    )
    requirements = result.stdout.split()
    assert any(r.startswith("tornado") for r in requirements)
    assert not any(r.startswith(("jupyter", "ipykernel")) for r in requirements)
    assert "--no-deps ." in dockerfile and "USER 65532" in dockerfile


def test_the_cluster_commands_run_without_jupyter_installed() -> None:
    # the image has no Jupyter: make importing any of it fail, then use the commands
    blocked = [
        "jupyter_server",
        "jupyter_client",
        "jupyterlab",
        "ipykernel",
        "IPython",
        "ipywidgets",
        "notebook",
    ]
    script = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from bf_jupyter.cli import main\n"
        "import bf_jupyter.cluster.webhook.app, bf_jupyter.cluster.webhook.command\n"
        "import bf_jupyter.cluster.tokenservice.app, bf_jupyter.cluster.tokenservice.command\n"
        "for command in ('webhook', 'certs', 'token-service', 'token-fetch'):\n"
        "    try:\n"
        "        main([command, '--help'])\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code == 0, stop.code\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--tls-cert" in result.stdout and "--extra-san" in result.stdout
