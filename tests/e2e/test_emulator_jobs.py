"""Jobs on the emulated cluster: pods from the template, owned by the Job, retried up to
backoffLimit, status conditions, and pods collected with their Job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.kubeapi import KubeApiError

if TYPE_CHECKING:
    from tests.e2e.cluster_handle import ClusterHandle


def job(
    name: str, code: str, *, backoff_limit: int = 6, restart_policy: str = "Never"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "restartPolicy": restart_policy,
                    "containers": [
                        {"name": "main", "image": "python:3", "command": ["python", "-c", code]}
                    ],
                },
            },
        },
    }


def condition(handle: ClusterHandle, namespace: str, name: str, kind: str) -> dict[str, Any]:
    return handle.wait_for(
        "Job",
        namespace,
        lambda _e, j: any(
            c.get("type") == kind and c.get("status") == "True"
            for c in (j.get("status") or {}).get("conditions") or []
        ),
        field_selector=f"metadata.name={name}",
        describe=f"job {name} {kind}",
        timeout=60,
    )


def test_job_runs_its_pod_to_completion(emulator: ClusterHandle, emulator_namespace: str) -> None:
    emulator.api.create("Job", job("once", "print('done')"), emulator_namespace)
    finished = condition(emulator, emulator_namespace, "once", "Complete")
    assert finished["status"]["succeeded"] == 1
    [pod] = emulator.api.list("Pod", emulator_namespace, label_selector="job-name=once")
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert emulator.pod_log(emulator_namespace, pod["metadata"]["name"]) == "done"


def test_failing_job_stops_at_its_backoff_limit(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    emulator.api.create(
        "Job", job("doomed", "raise SystemExit(1)", backoff_limit=1), emulator_namespace
    )
    failed = condition(emulator, emulator_namespace, "doomed", "Failed")
    assert failed["status"]["conditions"][0]["reason"] == "BackoffLimitExceeded"
    assert failed["status"]["failed"] == 2


def test_deleting_a_job_collects_its_pods(emulator: ClusterHandle, emulator_namespace: str) -> None:
    emulator.api.create("Job", job("long", "import time; time.sleep(60)"), emulator_namespace)
    emulator.wait_for(
        "Pod",
        emulator_namespace,
        lambda _e, p: (p.get("status") or {}).get("phase") == "Running",
        label_selector="job-name=long",
        describe="job pod running",
    )
    emulator.api.delete("Job", "long", emulator_namespace)
    emulator.wait_for(
        "Pod",
        emulator_namespace,
        lambda event, _p: event == "DELETED",
        label_selector="job-name=long",
        describe="job pod collected",
        initial=lambda items: not items,
    )


def test_job_template_must_not_restart_always(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    with pytest.raises(KubeApiError) as refused:
        emulator.api.create("Job", job("bad", "pass", restart_policy="Always"), emulator_namespace)
    assert refused.value.status == 422
    assert "spec.template.spec.restartPolicy" in str(refused.value)
