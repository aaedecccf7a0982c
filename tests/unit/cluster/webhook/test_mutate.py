"""The mutating rule, one behaviour per test; every patch is applied with jsonpatch and the resulting
pod is what the assertions look at. Tests named ``..._upstream_defect_N`` pin a defect of the
upstream integration (shared/reference/bitfusion.md) that must not come back."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonpatch
import pytest

from bf_jupyter.cluster.webhook import injection
from bf_jupyter.cluster.webhook.config import WebhookConfig
from bf_jupyter.cluster.webhook.mutate import mutate_pod
from bf_jupyter.contract import slice_annotation_key
from bf_jupyter.slice import GpuSlice

from .conftest import GIB, Pod

Builder = Callable[..., Any]
BIN = "/opt/bitfusion/bin/bitfusion"


def containers(pod: Pod) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"]["containers"]}


# ----- which pods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("management", [None, "none", "false", "no", "off", "", "inject"])
def test_webhook_leaves_unmanaged_pods_alone(
    management: str | None, make_pod: Builder, gpu_container: Builder, config: WebhookConfig
) -> None:
    # given a pod that does not ask for management (keys alone are not enough)
    pod = make_pod(gpu_container(), management=management)
    # when it is mutated
    verdict = mutate_pod(pod, config)
    # then it is allowed unchanged
    assert verdict.allowed and verdict.patch == ()


@pytest.mark.parametrize("management", ["all", "ALL", "y", "yes", "true", "On"])
def test_webhook_manages_every_spelling_of_all(
    management: str, make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    pod = mutated(make_pod(gpu_container(), management=management))
    assert pod["spec"]["containers"][0]["command"][:2] == [BIN, "run"]


# ----- the command ------------------------------------------------------------------------------


def test_webhook_wraps_command_and_args_into_one_argv_upstream_defect_1(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    # given arguments a shell would split, expand or choke on
    args = ["--note", "two words", "it's", "$(rm -rf /)", "a;b", "--", '"quoted"']
    pod = make_pod(gpu_container(command=["python", "-u", "train.py"], args=args))
    # when mutated
    main = containers(mutated(pod))["main"]
    # then the command is one argv list with every element verbatim, one '--', and no args left
    assert main["command"] == [
        BIN, "run", "-n", "1", "-p", "0.5", "--", "python", "-u", "train.py", *args,
    ]  # fmt: skip
    assert "args" not in main
    assert "/bin/bash" not in main["command"] and "-c" not in main["command"]


def test_webhook_renders_the_slice_through_gpu_slice(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    pod = make_pod(
        gpu_container(amount="2", percent="25"),
        annotations={"bitfusion-client/filter": "device.name=V100 server.has-rdma=true"},
    )
    expected = GpuSlice.parse("2x25% device.name=V100 server.has-rdma=true").client_args()
    assert containers(mutated(pod))["main"]["command"] == [
        BIN, "run", *expected, "--", "python", "train.py",
    ]  # fmt: skip


def test_webhook_denies_gpu_container_without_command_upstream_defect_10(
    make_pod: Builder, gpu_container: Builder, config: WebhookConfig
) -> None:
    # given a GPU container that relies on its image's ENTRYPOINT
    pod = make_pod(gpu_container(command=[]))
    # then it is denied with a message saying to set `command`, not silently left unwrapped
    verdict = mutate_pod(pod, config)
    assert not verdict.allowed
    assert "container main has no command: set `command`" in verdict.message()


def test_injection_mode_injects_the_client_but_leaves_the_command(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    # given injection mode and a container without a command (the user runs bitfusion itself)
    pod = make_pod(gpu_container(command=[], args=["serve"]), management="injection")
    result = mutated(pod)
    main = containers(result)["main"]
    assert "command" not in main or main["command"] == []
    assert main["args"] == ["serve"]
    assert main["resources"]["limits"]["bitfusion.io/gpu"] == "50"
    assert result["spec"]["initContainers"][-1]["name"] == injection.INIT_CONTAINER


# ----- containers ------------------------------------------------------------------------------


def test_webhook_handles_every_gpu_container_of_a_multi_container_pod_upstream_defect_4(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    sidecar = {"name": "logs", "image": "busybox", "command": ["tail", "-f", "/log"]}
    pod = make_pod(
        sidecar,
        gpu_container("trainer", amount="2", percent="100", args=["--big"]),
        gpu_container("evaluator", command=["python", "eval.py"], amount="1", percent="30"),
    )
    result = containers(mutated(pod))
    assert result["trainer"]["command"] == [
        BIN, "run", "-n", "2", "-p", "1", "--", "python", "train.py", "--big",
    ]  # fmt: skip
    assert result["evaluator"]["command"] == [
        BIN, "run", "-n", "1", "-p", "0.3", "--", "python", "eval.py",
    ]  # fmt: skip
    assert result["trainer"]["resources"]["limits"]["bitfusion.io/gpu"] == "200"
    assert result["evaluator"]["resources"]["limits"]["bitfusion.io/gpu"] == "30"
    assert result["logs"] == sidecar


def test_webhook_leaves_containers_without_slice_keys_untouched_upstream_defect_5(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    # given a container with a command but no gpu-amount beside a GPU container
    helper = {"name": "helper", "image": "busybox", "command": ["sleep", "3600"]}
    pod = make_pod(helper, gpu_container())
    # then the pod is allowed and the helper container is exactly as written
    assert containers(mutated(pod))["helper"] == helper


def test_webhook_denies_a_managed_pod_without_any_slice(
    make_pod: Builder, config: WebhookConfig
) -> None:
    pod = make_pod({"name": "main", "image": "x", "command": ["python"]})
    verdict = mutate_pod(pod, config)
    assert not verdict.allowed
    assert "no container asks for a GPU slice" in verdict.message()


def test_webhook_denies_slice_keys_on_init_containers(
    make_pod: Builder, gpu_container: Builder, config: WebhookConfig
) -> None:
    pod = make_pod(gpu_container(), initContainers=[gpu_container("prepare")])
    verdict = mutate_pod(pod, config)
    assert not verdict.allowed
    assert "init container prepare asks for a GPU slice" in verdict.message()


# ----- resources and annotations -----------------------------------------------------------------


@pytest.mark.parametrize("section", ["limits", "requests"])
def test_webhook_replaces_slice_keys_by_quota_units_in_requests_and_limits(
    section: str, make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    pod = make_pod(gpu_container(amount="3", percent="40", section=section))
    resources = containers(mutated(pod))["main"]["resources"]
    for values in (resources["requests"], resources["limits"]):
        assert values["bitfusion.io/gpu"] == "120"
        assert not [k for k in values if k.startswith("bitfusion.io/gpu-")]
    assert resources[section]["cpu"] == "1"  # other resources kept


def test_webhook_prices_memory_slices_with_the_configured_gpu_memory_upstream_defect_6(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    # given 16 GiB GPUs and a slice of 8 GiB on each of 2 GPUs
    pod = make_pod(gpu_container(amount="2", percent=None, memory="8Gi"))
    main = containers(mutated(pod))["main"]
    # then the client gets -m in MiB and the quota 2 × 50 units
    assert main["command"][:6] == [BIN, "run", "-n", "2", "-m", "8192"]
    assert main["resources"]["limits"]["bitfusion.io/gpu"] == "100"


def test_webhook_denies_memory_slices_when_gpu_memory_is_not_configured(
    make_pod: Builder, gpu_container: Builder
) -> None:
    pod = make_pod(gpu_container(percent=None, memory="8Gi"))
    verdict = mutate_pod(pod, WebhookConfig(per_gpu_memory_bytes=None))
    assert not verdict.allowed
    assert "configure the per-GPU memory" in verdict.message()


def test_webhook_records_each_containers_slice_in_its_annotation(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    pod = make_pod(
        gpu_container("a", amount="1", percent="50"),
        gpu_container("b", amount="2", percent=None, memory="4Gi"),
        annotations={"bitfusion-client/filter": "device.name=V100"},
    )
    notes = mutated(pod)["metadata"]["annotations"]
    assert GpuSlice.parse(notes[slice_annotation_key("a")]) == GpuSlice.parse(
        "1x50% device.name=V100"
    )
    assert GpuSlice.parse(notes[slice_annotation_key("b")]).memory_bytes == 4 * GIB


def test_webhook_keeps_user_annotations_upstream_defect_2(
    make_pod: Builder, gpu_container: Builder, mutated: Builder
) -> None:
    users = {"team": "vision", "example.com/owner": "ana", "auto-management/status": "pending"}
    result = mutated(make_pod(gpu_container(), annotations=users))
    notes = result["metadata"]["annotations"]
    assert notes["team"] == "vision" and notes["example.com/owner"] == "ana"
    assert notes["auto-management/status"] == "injected"
    assert notes["auto-management/bitfusion"] == "all"


def test_webhook_adds_its_annotations_beside_the_management_one(
    gpu_container: Builder, mutated: Builder
) -> None:
    pod: Pod = {
        "metadata": {"generateName": "train-", "annotations": {"auto-management/bitfusion": "all"}},
        "spec": {"containers": [gpu_container()]},
    }
    assert mutated(pod)["metadata"]["annotations"] == {
        "auto-management/bitfusion": "all",
        "auto-management/status": "injected",
        slice_annotation_key("main"): "1x50%",
    }


# ----- errors ------------------------------------------------------------------------------------


def test_webhook_reports_every_problem_of_a_pod_together(
    make_pod: Builder, gpu_container: Builder, config: WebhookConfig
) -> None:
    pod = make_pod(
        gpu_container("a", percent="150"),
        gpu_container("b", command=[]),
        annotations={"bitfusion-client/os": "plan9"},
    )
    verdict = mutate_pod(pod, config)
    assert not verdict.allowed
    assert len(verdict.problems) == 3
    assert "gpu-percent 150 is out of range: use 1–100" in verdict.message()
    assert "container b has no command" in verdict.message()
    assert "'plan9'" in verdict.message()


@pytest.mark.parametrize(
    "spec",
    [{"containers": "main"}, {"containers": [["x"]]}, {"containers": [{"image": "x"}]}, "spec"],
    ids=["containers-not-list", "container-not-mapping", "no-name", "spec-not-mapping"],
)
def test_webhook_denies_a_malformed_managed_pod_with_a_bad_request(
    spec: Any, config: WebhookConfig
) -> None:
    pod = {"metadata": {"annotations": {"auto-management/bitfusion": "all"}}, "spec": spec}
    verdict = mutate_pod(pod, config)
    assert not verdict.allowed and verdict.code == 400
    assert "pod is malformed" in verdict.message()


# ----- idempotence and sharing ------------------------------------------------------------------


@pytest.mark.parametrize("management", ["all", "injection"])
def test_mutating_a_mutated_pod_changes_nothing(
    management: str,
    make_pod: Builder,
    gpu_container: Builder,
    mutated: Builder,
    config: WebhookConfig,
) -> None:
    pod = make_pod(
        gpu_container("a", env=[{"name": "LD_LIBRARY_PATH", "value": "/x"}]),
        gpu_container("b", percent=None, memory="2Gi"),
        {"name": "side", "image": "busybox"},
        management=management,
        initContainers=[{"name": "first", "image": "busybox"}],
        volumes=[{"name": "v", "emptyDir": {}}],
    )
    once = mutated(pod)
    again = mutate_pod(once, config)
    assert again.allowed and again.patch == ()


def test_webhook_never_changes_the_pod_it_is_given(
    make_pod: Builder, gpu_container: Builder, config: WebhookConfig
) -> None:
    pod = make_pod(gpu_container(args=["x"]), initContainers=[{"name": "i", "image": "b"}])
    before = json.dumps(pod, sort_keys=True)
    mutate_pod(pod, config)
    assert json.dumps(pod, sort_keys=True) == before


def test_concurrent_mutations_share_no_state_upstream_defect_7(
    make_pod: Builder, gpu_container: Builder, config: WebhookConfig
) -> None:
    # given many different pods, each mutated alone first
    pods = [
        make_pod(
            gpu_container(f"c{i}", amount=str(1 + i % 4), percent=str(1 + i % 100), args=[str(i)])
        )
        for i in range(200)
    ]
    alone = [mutate_pod(pod, config).patch for pod in pods]
    # when the same pods are mutated at once from many threads
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda pod: mutate_pod(pod, config).patch, pods))
    # then every answer is the one its own pod got alone
    assert together == alone
    for pod, patch in zip(pods, together, strict=True):
        result = jsonpatch.apply_patch(pod, list(patch))
        name = pod["spec"]["containers"][0]["name"]
        assert result["spec"]["containers"][0]["command"][-1] == name[1:]
