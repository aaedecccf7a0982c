"""workload.yaml and job.yaml: the seed's pod, as our webhook and train.py understand it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from bf_jupyter.contract import ANNOTATION_CLIENT_OS, ANNOTATION_CLIENT_VERSION, ManagementMode
from bf_jupyter.slice import GpuSlice
from tests.integration.vgg19.conftest import EXAMPLE

if TYPE_CHECKING:
    from tests.integration.vgg19.conftest import RunScript

MANIFESTS = ("workload.yaml", "job.yaml")


def documents(name: str) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((EXAMPLE / name).read_text())}


def pod_of(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, spec) of the pod the manifest creates."""
    docs = documents(name)
    if "Job" in docs:
        template = docs["Job"]["spec"]["template"]
        return template["metadata"], template["spec"]
    return docs["Pod"]["metadata"], docs["Pod"]["spec"]


@pytest.mark.parametrize("name", MANIFESTS)
def test_the_pod_asks_the_webhook_for_one_whole_gpu(name: str) -> None:
    metadata, spec = pod_of(name)
    (container,) = spec["containers"]
    annotations = metadata["annotations"]
    assert ManagementMode.from_annotations(annotations) is ManagementMode.ALL
    assert annotations[ANNOTATION_CLIENT_OS] and annotations[ANNOTATION_CLIENT_VERSION]
    assert GpuSlice.from_container(container, annotations) == GpuSlice.parse("1")


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_mount_has_its_volume_and_inputs_are_read_only(name: str) -> None:
    _, spec = pod_of(name)
    (container,) = spec["containers"]
    volumes = {v["name"] for v in spec["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert set(mounts) == volumes
    assert mounts["code"]["readOnly"] and mounts["data"]["readOnly"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert all(isinstance(word, str) for word in container["command"])


def test_the_job_runs_the_same_pod_as_the_workload() -> None:
    pod_metadata, pod_spec = pod_of("workload.yaml")
    job_metadata, job_spec = pod_of("job.yaml")
    assert job_spec == pod_spec
    assert job_metadata["annotations"] == pod_metadata["annotations"]
    assert (
        documents("job.yaml")["PersistentVolumeClaim"]
        == documents("workload.yaml")["PersistentVolumeClaim"]
    )


def test_the_command_is_a_valid_train_py_invocation(
    run_script: RunScript, digits_dir: Path, tmp_path: Path
) -> None:
    # given the pod's argv with its mount paths mapped onto this checkout and the digits
    _, spec = pod_of("workload.yaml")
    command = copy.deepcopy(spec["containers"][0]["command"])
    mounts = {
        "/workspace/code": str(EXAMPLE),
        "/workspace/data": str(digits_dir),
        "/workspace/output": str(tmp_path),
    }
    for prefix, local in mounts.items():
        command = [word.replace(prefix, local) for word in command]
    assert command[:2] == ["python", str(EXAMPLE / "train.py")]
    # when train.py checks it without training, then every option is accepted
    result = run_script("train.py", *command[2:], "--dry-run")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "split.json").is_file()


@pytest.mark.parametrize("name", MANIFESTS)
def test_the_manifest_passes_the_kubernetes_schemas(name: str) -> None:
    validate = pytest.importorskip("kubernetes_validate")
    for document in yaml.safe_load_all((EXAMPLE / name).read_text()):
        validate.validate(document, "1.33", strict=True)
