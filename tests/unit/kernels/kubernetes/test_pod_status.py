"""Reading a kernel pod: progress as it happens, and the pod's own reason when it cannot start."""

from __future__ import annotations

from typing import Any

from bf_jupyter.kernels.kubernetes.pod_status import (
    event_failure,
    event_progress,
    one_sentence,
    read_pod,
)


def _pod(
    *,
    node: str = "",
    waiting: dict[str, Any] | None = None,
    running: bool = False,
    terminated: dict[str, Any] | None = None,
    last_state: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    ip: str = "",
    phase: str = "Pending",
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if waiting is not None:
        state["waiting"] = waiting
    if running:
        state["running"] = {"startedAt": "2025-01-01T00:00:00Z"}
    if terminated is not None:
        state["terminated"] = terminated
    statuses = [{"name": "kernel", "state": state, "lastState": last_state or {}}] if state else []
    return {
        "metadata": {"name": "bf-kernel-k-1"},
        "spec": {"nodeName": node, "containers": [{"name": "kernel", "image": "reg/kernel:1"}]},
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": conditions or [],
            "containerStatuses": statuses,
        },
    }


def test_a_fresh_pod_has_reached_nothing_and_may_still_start() -> None:
    reading = read_pod(_pod(), container="kernel")
    assert reading.reached == ()
    assert reading.failure is None
    assert reading.ip is None


def test_a_running_pod_reports_scheduled_then_started_and_its_address() -> None:
    reading = read_pod(
        _pod(node="node-1", running=True, ip="10.0.0.7", phase="Running"), container="kernel"
    )
    assert [stage for stage, _ in reading.reached] == ["scheduled", "started"]
    assert "node-1" in reading.reached[0][1]
    assert reading.ip == "10.0.0.7"
    assert reading.running


def test_image_pull_failure_names_the_image_and_the_registry_message() -> None:
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        pod = _pod(
            node="n", waiting={"reason": reason, "message": 'pull "reg/kernel:1": not found'}
        )
        failure = read_pod(pod, container="kernel").failure
        assert failure is not None
        assert failure.startswith("The kernel image reg/kernel:1 cannot be pulled")
        assert reason in failure and "not found" in failure


def test_unschedulable_fails_with_the_scheduler_message_unless_told_to_wait() -> None:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
    }
    pod = _pod(conditions=[condition])
    failure = read_pod(pod, container="kernel").failure
    assert failure == (
        "No node can run the kernel pod: 0/3 nodes are available: 3 node(s) didn't match "
        "Pod's node affinity/selector."
    )
    assert read_pod(pod, container="kernel", fail_on_unschedulable=False).failure is None


def test_exit_before_ready_quotes_the_last_line_it_printed() -> None:
    pod = _pod(
        node="n",
        terminated={
            "exitCode": 3,
            "reason": "Error",
            "message": "[INFO] start\n[ERROR] pool cannot serve 1x50%",
        },
        phase="Failed",
    )
    reading = read_pod(pod, container="kernel")
    assert reading.exit_code == 3
    assert reading.failure == (
        "The kernel container exited with code 3 (Error) before the kernel was ready: "
        "pool cannot serve 1x50%."
    )


def test_exit_without_a_termination_message_uses_the_log_line_given() -> None:
    pod = _pod(node="n", terminated={"exitCode": 1, "reason": "Error"})
    failure = read_pod(
        pod, container="kernel", last_log_line="ModuleNotFoundError: ipykernel"
    ).failure
    assert failure is not None and failure.endswith("ModuleNotFoundError: ipykernel.")


def test_crash_loop_reports_the_previous_exit() -> None:
    pod = _pod(
        node="n",
        waiting={"reason": "CrashLoopBackOff", "message": "back-off 10s restarting"},
        last_state={"terminated": {"exitCode": 137, "message": "Killed"}},
    )
    failure = read_pod(pod, container="kernel").failure
    assert failure is not None
    assert "CrashLoopBackOff" in failure and "137" in failure and failure.endswith("Killed.")


def test_missing_secret_or_config_is_a_create_failure() -> None:
    pod = _pod(
        node="n",
        waiting={"reason": "CreateContainerConfigError", "message": 'secret "x" not found'},
    )
    failure = read_pod(pod, container="kernel").failure
    assert (
        failure
        == 'The kernel container cannot be created (CreateContainerConfigError): secret "x" not found.'
    )


def test_container_creating_is_not_a_failure() -> None:
    pod = _pod(node="n", waiting={"reason": "ContainerCreating"})
    assert read_pod(pod, container="kernel").failure is None


def test_evicted_pod_fails_with_its_reason() -> None:
    pod = _pod(node="n", phase="Failed")
    pod["status"].update(reason="Evicted", message="The node was low on resource: memory.")
    assert read_pod(pod, container="kernel").failure == (
        "The kernel pod failed (Evicted): The node was low on resource: memory."
    )


def test_pulling_event_is_progress_and_other_events_are_not() -> None:
    assert event_progress({"reason": "Pulling", "message": 'Pulling image "reg/kernel:1"'}) == (
        "pulling",
        'Pulling image "reg/kernel:1"',
    )
    assert event_progress({"reason": "Scheduled", "message": "assigned"}) is None


def test_one_sentence_flattens_and_bounds_text() -> None:
    assert one_sentence("a\n  b") == "a b."
    assert one_sentence("done.") == "done."
    assert len(one_sentence("x" * 1000)) <= 400


def test_a_refused_resource_claim_fails_the_start_with_the_api_servers_words() -> None:
    message = (
        'PodResourceClaim gpu: resourceclaims.resource.k8s.io "bf-kernel-k-1-gpu-x2" is forbidden: '
        "exceeded quota: gpu-quota, requested: gpu.nvidia.com.deviceclass.resource.k8s.io/devices=1"
    )
    failure = event_failure({"reason": "FailedResourceClaimCreation", "message": message})
    assert failure == f"Kubernetes refused the kernel's ResourceClaim: {message}."


def test_other_events_are_no_failure() -> None:
    assert event_failure({"reason": "Pulling", "message": "Pulling image"}) is None
    transient = {"reason": "FailedResourceClaimCreation", "message": "template not found"}
    assert event_failure(transient) is None
