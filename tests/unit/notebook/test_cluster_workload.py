"""The pod ``%bitfusion submit`` builds (the seed's workload.yaml, corrected) and how work reads back."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bf_jupyter.contract import (
    ANNOTATION_FILTER,
    ANNOTATION_MANAGEMENT,
    LABEL_COMPONENT,
    LABEL_NAME,
    LABEL_USER,
    ManagementMode,
    slice_annotation_key,
)
from bf_jupyter.notebook.cluster_workload import (
    build_workload,
    check_name,
    format_rows,
    pod_outcome,
    pod_problem,
    quota_text,
    row_of,
    workload_name,
    workload_selector,
)
from bf_jupyter.slice import GpuSlice


def _pod(**kwargs: object) -> dict[str, object]:
    defaults: dict[str, object] = {
        "name": "train-abcde",
        "namespace": "ml",
        "gpu_slice": GpuSlice(1, 50),
        "image": "tensorflow/tensorflow:2.16.1",
        "command": ["python", "/work/train.py", "--epochs", "3"],
        "user": "ada",
    }
    return build_workload(**{**defaults, **kwargs})  # type: ignore[arg-type]


def test_the_pod_asks_for_the_slice_with_resource_keys_and_full_auto_management() -> None:
    pod = _pod()

    metadata = pod["metadata"]
    container = pod["spec"]["containers"][0]  # type: ignore[index]
    assert pod["kind"] == "Pod" and metadata["namespace"] == "ml"  # type: ignore[index]
    assert ManagementMode.from_annotations(metadata["annotations"]) is ManagementMode.ALL  # type: ignore[index]
    assert metadata["annotations"][ANNOTATION_MANAGEMENT] == "all"  # type: ignore[index]
    assert container["resources"] == {"limits": GpuSlice(1, 50).to_resources()}
    assert GpuSlice.from_container(container) == GpuSlice(1, 50)


def test_the_command_is_a_list_of_words_not_a_shell_string() -> None:
    container = _pod()["spec"]["containers"][0]  # type: ignore[index]

    assert container["command"] == ["python", "/work/train.py", "--epochs", "3"]
    assert "args" not in container
    assert pod_restart_policy(_pod()) == "Never"


def pod_restart_policy(pod: dict[str, object]) -> str:
    return pod["spec"]["restartPolicy"]  # type: ignore[index,no-any-return]


def test_output_is_unbuffered_so_logs_and_records_stream() -> None:
    env = {e["name"]: e["value"] for e in _pod()["spec"]["containers"][0]["env"]}  # type: ignore[index]

    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["BF_SLICE"] == "1x50%"


def test_filters_travel_in_the_filter_annotation() -> None:
    pod = _pod(gpu_slice=GpuSlice.parse("1x50% device.name=V100"))

    assert pod["metadata"]["annotations"][ANNOTATION_FILTER] == "device.name=V100"  # type: ignore[index]


def test_labels_mark_submitted_work_and_its_owner() -> None:
    labels = _pod(user="ada@example.org")["metadata"]["labels"]  # type: ignore[index]

    assert labels[LABEL_NAME] == "bf-jupyter"
    assert labels[LABEL_COMPONENT] == "workload"
    assert labels[LABEL_USER] == "ada-example.org"
    assert workload_selector("ada@example.org").endswith("bf-jupyter/user=ada-example.org")


def test_a_job_wraps_the_same_pod_and_never_retries() -> None:
    job = _pod(job=True)

    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0  # type: ignore[index]
    template = spec["template"]  # type: ignore[index]
    assert template["metadata"]["annotations"][ANNOTATION_MANAGEMENT] == "all"
    assert template["spec"] == _pod()["spec"]


def test_names_are_generated_from_the_script_and_checked_when_given() -> None:
    assert workload_name(["python", "/work/Train_VGG19.py"], suffix="x1y2z") == "train-vgg19-x1y2z"
    assert workload_name(["nvidia-smi"], suffix="abcde") == "nvidia-smi-abcde"
    assert check_name("train-1") == "train-1"
    with pytest.raises(ValueError, match="--name 'Train_1' is not a valid name"):
        check_name("Train_1")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            {
                "containerStatuses": [
                    {
                        "name": "main",
                        "state": {
                            "waiting": {"reason": "ImagePullBackOff", "message": "manifest unknown"}
                        },
                    }
                ]
            },
            "image reg/missing:1 cannot be pulled (ImagePullBackOff): manifest unknown",
        ),
        (
            {
                "containerStatuses": [
                    {
                        "name": "main",
                        "state": {
                            "waiting": {
                                "reason": "CreateContainerConfigError",
                                "message": "secret x not found",
                            }
                        },
                    }
                ]
            },
            "container main cannot start (CreateContainerConfigError): secret x not found",
        ),
        (
            {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes have bitfusion.io/gpu",
                    }
                ]
            },
            "pod cannot be scheduled: 0/3 nodes have bitfusion.io/gpu",
        ),
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "main", "state": {"waiting": {"reason": "ContainerCreating"}}}
                ],
            },
            None,
        ),
    ],
)
def test_a_pod_that_cannot_start_says_why_in_one_sentence(
    status: dict[str, object], expected: str | None
) -> None:
    pod = {"spec": {"containers": [{"name": "main", "image": "reg/missing:1"}]}, "status": status}

    assert pod_problem(pod) == expected


def test_the_outcome_of_a_finished_pod_has_its_exit_code() -> None:
    pod = {
        "status": {
            "phase": "Failed",
            "containerStatuses": [{"state": {"terminated": {"exitCode": 3, "reason": "Error"}}}],
        }
    }

    assert pod_outcome(pod) == ("Failed", 3, "Error")


def test_rows_show_the_slice_the_webhook_recorded_or_the_resource_keys() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    pod = {"kind": "Pod", **_pod()}
    pod["metadata"] = {**pod["metadata"], "creationTimestamp": "2026-01-01T11:57:00Z"}  # type: ignore[dict-item]
    pod["status"] = {"phase": "Running"}
    mutated = {"kind": "Pod", **_pod(name="other")}
    mutated["metadata"]["annotations"][slice_annotation_key("main")] = "2x8Gi"  # type: ignore[index]
    mutated["spec"]["containers"][0]["resources"] = {"limits": {"bitfusion.io/gpu": "100"}}  # type: ignore[index]
    job = {
        "kind": "Job",
        **_pod(name="batch", job=True),
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }

    rows = [row_of(pod, now), row_of(mutated, now), row_of(job, now)]

    assert [(r.name, r.kind, r.status, r.slice_text, r.age) for r in rows] == [
        ("train-abcde", "Pod", "Running", "1x50%", "3m"),
        ("other", "Pod", "Pending", "2x8Gi", "?"),
        ("batch", "Job", "Complete", "1x50%", "?"),
    ]
    table = format_rows(rows)
    assert table.splitlines()[0].split() == ["NAME", "KIND", "STATUS", "SLICE", "AGE", "IMAGE"]


def test_quota_is_shown_in_units_and_gpus() -> None:
    quota = {
        "metadata": {"name": "gpu-quota"},
        "status": {
            "hard": {"requests.bitfusion.io/gpu": "400"},
            "used": {"requests.bitfusion.io/gpu": "150"},
        },
    }

    assert quota_text([quota]) == "150 of 400 units used (1.5 of 4 GPUs, ResourceQuota gpu-quota)"
    assert quota_text([]) == "no bitfusion.io/gpu quota"
