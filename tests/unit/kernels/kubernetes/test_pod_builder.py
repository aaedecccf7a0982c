"""The kernel pod: the webhook can wrap it, the slice travels as resource keys, no secret inside."""

from __future__ import annotations

import base64
import dataclasses
import json

from bf_jupyter.contract import (
    ANNOTATION_FILTER,
    ANNOTATION_MANAGEMENT,
    LABEL_COMPONENT,
    LABEL_KERNEL_ID,
    LABEL_NAME,
    LABEL_SERVER,
    LABEL_USER,
    ManagementMode,
)
from bf_jupyter.kernels.kubernetes.pod_builder import (
    KernelPodBuilder,
    KernelPodSettings,
    PodLaunch,
    pod_name_for,
)
from bf_jupyter.kernels.remote_start import kernel_ports
from bf_jupyter.slice import GpuSlice


def _container(pod: dict) -> dict:  # type: ignore[type-arg]
    (container,) = pod["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def test_pod_asks_the_webhook_to_wrap_its_command(
    builder: KernelPodBuilder, launch: PodLaunch
) -> None:
    pod = builder.pod(launch)
    assert ManagementMode.from_annotations(pod["metadata"]["annotations"]) is ManagementMode.ALL
    assert pod["metadata"]["annotations"][ANNOTATION_MANAGEMENT] == "all"
    command = _container(pod)["command"]
    assert command[:3] == ["python", "-m", "bf_jupyter.kernels.launcher"]
    assert "args" not in _container(pod)


def test_slice_travels_as_the_contract_resource_keys(
    builder: KernelPodBuilder, launch: PodLaunch
) -> None:
    container = _container(builder.pod(launch))
    assert GpuSlice.from_container(container) == launch.gpu_slice
    assert container["resources"]["limits"]["bitfusion.io/gpu-percent"] == "50"


def test_slice_filters_become_the_filter_annotation(
    builder: KernelPodBuilder, launch: PodLaunch
) -> None:
    filtered = dataclasses.replace(launch, gpu_slice=GpuSlice.parse("2x8Gi device.name=V100"))
    pod = builder.pod(filtered)
    assert pod["metadata"]["annotations"][ANNOTATION_FILTER] == "device.name=V100"
    assert (
        GpuSlice.from_container(_container(pod), pod["metadata"]["annotations"])
        == filtered.gpu_slice
    )


def test_pod_carries_the_contract_labels(builder: KernelPodBuilder, launch: PodLaunch) -> None:
    labels = builder.pod(launch)["metadata"]["labels"]
    assert labels[LABEL_NAME] == "bf-jupyter"
    assert labels[LABEL_COMPONENT] == "kernel"
    assert labels[LABEL_KERNEL_ID] == launch.kernel_id
    assert labels[LABEL_USER] == "ada"
    assert labels[LABEL_SERVER] == "jupyter-ada"


def test_configured_labels_cannot_override_the_contract_labels(
    settings: KernelPodSettings, launch: PodLaunch
) -> None:
    builder = KernelPodBuilder(
        dataclasses.replace(settings, extra_labels={LABEL_COMPONENT: "web", "team": "vision"})
    )
    labels = builder.pod(launch)["metadata"]["labels"]
    assert labels[LABEL_COMPONENT] == "kernel"
    assert labels["team"] == "vision"


def test_key_is_in_the_secret_and_nowhere_in_the_pod(
    builder: KernelPodBuilder, launch: PodLaunch
) -> None:
    key = b"f00dfeed-secret-key"
    secret = builder.secret(launch, key)
    pod = builder.pod(launch)
    assert base64.b64decode(secret["data"]["key"]) == key
    assert key.decode() not in json.dumps(pod)
    key_env = next(e for e in _container(pod)["env"] if e["name"] == "BF_KERNEL_KEY")
    assert key_env["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"],
        "key": "key",
    }


def test_address_comes_from_the_downward_api(builder: KernelPodBuilder, launch: PodLaunch) -> None:
    ip_env = next(e for e in _container(builder.pod(launch))["env"] if e["name"] == "BF_KERNEL_IP")
    assert ip_env["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_environment_is_exactly_the_allow_listed_one(
    builder: KernelPodBuilder, launch: PodLaunch
) -> None:
    names = [e["name"] for e in _container(builder.pod(launch))["env"]]
    assert names == [
        "BF_KERNEL_KEY",
        "BF_KERNEL_IP",
        "KERNEL_ID",
        "BF_SLICE",
        "JPY_SESSION_NAME",
        "KERNEL_USERNAME",
    ]


def test_no_api_token_without_a_service_account(
    builder: KernelPodBuilder, launch: PodLaunch, settings: KernelPodSettings
) -> None:
    assert builder.pod(launch)["spec"]["automountServiceAccountToken"] is False
    with_account = KernelPodBuilder(dataclasses.replace(settings, service_account="kernels"))
    spec = with_account.pod(launch)["spec"]
    assert spec["serviceAccountName"] == "kernels"
    assert spec["automountServiceAccountToken"] is True


def test_operator_settings_reach_the_spec(settings: KernelPodSettings, launch: PodLaunch) -> None:
    configured = dataclasses.replace(
        settings,
        image_pull_policy="Always",
        image_pull_secrets=("regcred",),
        cpu_request="1",
        memory_limit="8Gi",
        node_selector={"gpu": "bitfusion"},
        tolerations=({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},),
        extra_annotations={"team": "vision", ANNOTATION_MANAGEMENT: "none"},
    )
    pod = KernelPodBuilder(configured).pod(launch)
    spec = pod["spec"]
    container = _container(pod)
    assert container["imagePullPolicy"] == "Always"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"gpu": "bitfusion"}
    assert spec["tolerations"][0]["key"] == "gpu"
    assert container["resources"]["requests"] == {"cpu": "1"}
    assert container["resources"]["limits"]["memory"] == "8Gi"
    assert pod["metadata"]["annotations"]["team"] == "vision"
    assert pod["metadata"]["annotations"][ANNOTATION_MANAGEMENT] == "all"


def test_restart_is_a_fresh_pod_with_other_ports() -> None:
    first, second = kernel_ports(52700, 1), kernel_ports(52700, 2)
    assert set(first.values()).isdisjoint(second.values())
    assert kernel_ports(52700, 3) == first
    assert pod_name_for("abc", 1) != pod_name_for("abc", 2)


def test_pod_name_is_a_dns_label_for_any_kernel_id() -> None:
    name = pod_name_for("Kernel_ID/with:odd*chars-" + "x" * 80, 12)
    assert len(name) <= 63
    assert name.endswith("-12")
    assert all(c.isalnum() or c == "-" for c in name) and name == name.lower()


def test_owner_reference_is_set_when_the_server_runs_in_a_pod(
    builder: KernelPodBuilder, launch: PodLaunch
) -> None:
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "jupyter-ada", "uid": "u-1"}
    pod = builder.pod(dataclasses.replace(launch, owner=owner))
    assert pod["metadata"]["ownerReferences"] == [owner]
    assert "ownerReferences" not in builder.pod(launch)["metadata"]


def test_kernel_pods_never_restart_in_place(builder: KernelPodBuilder, launch: PodLaunch) -> None:
    spec = builder.pod(launch)["spec"]
    assert spec["restartPolicy"] == "Never"
    assert _container(builder.pod(launch))["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_encrypted_channels_take_the_curve_keys_from_the_secret_too(
    builder: KernelPodBuilder, launch: PodLaunch
) -> None:
    keys = {"curve_secretkey": b"S" * 40, "curve_publickey": b"P" * 40}
    encrypted = dataclasses.replace(launch, encrypted=True)
    secret = builder.secret(encrypted, b"k", keys)
    pod = builder.pod(encrypted)
    assert base64.b64decode(secret["data"]["curve_secretkey"]) == b"S" * 40
    assert "SSSS" not in json.dumps(pod)
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
        for e in _container(pod)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {
        "BF_KERNEL_KEY": "key",
        "BF_KERNEL_CURVE_SECRETKEY": "curve_secretkey",
        "BF_KERNEL_CURVE_PUBLICKEY": "curve_publickey",
    }
