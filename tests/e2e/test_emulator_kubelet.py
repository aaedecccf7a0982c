"""The emulated scheduler and process-kubelet: binding against allocatable, pod lifecycle, restarts,
init containers, images that cannot be pulled, env and volumes, logs and graceful deletion."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.kubeapi import KubeApiError

if TYPE_CHECKING:
    from tests.e2e.cluster_handle import ClusterHandle


Obj = dict[str, Any]


def pod(name: str, command: list[str], **spec: Any) -> Obj:
    container = {"name": "main", "image": "python:3.11", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
            **spec,
        },
    }


def python(code: str) -> list[str]:
    return ["python", "-c", code]


def reasons(handle: ClusterHandle, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in handle.events_for(namespace, name)]


def test_pod_runs_to_success_with_status_and_events_like_a_kubelet(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    created = emulator.api.create(
        "Pod", pod("ok", python("print('hello from the pod')")), emulator_namespace
    )
    done = emulator.wait_for_pod_phase(emulator_namespace, "ok", "Succeeded")
    status = done["status"]
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert status["podIP"].startswith("127.") and status["podIP"] != "127.0.0.1"
    assert done["spec"]["nodeName"] == "node-1"
    assert emulator.pod_log(emulator_namespace, "ok") == "hello from the pod"
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(
        reasons(emulator, emulator_namespace, "ok")
    )
    # the phases it went through, replayed from its creation's resourceVersion
    phases: list[str] = []
    for event in emulator.api.watch(
        "Pod", emulator_namespace, field_selector="metadata.name=ok",
        resource_version=created["metadata"]["resourceVersion"], timeout_seconds=1,
    ):  # fmt: skip
        phase = event.object["status"]["phase"]
        if not phases or phases[-1] != phase:
            phases.append(phase)
    assert phases == ["Pending", "Running", "Succeeded"]


def test_pod_can_serve_on_its_own_address(emulator: ClusterHandle, emulator_namespace: str) -> None:
    code = "import os,socket; s=socket.socket(); s.bind((os.environ['POD_IP'], 0)); s.listen(); print(s.getsockname()[0])"
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    emulator.api.create(
        "Pod", pod("server", python(code), container={"env": env}), emulator_namespace
    )
    done = emulator.wait_for_pod_phase(emulator_namespace, "server", ("Succeeded", "Failed"))
    assert emulator.pod_log(emulator_namespace, "server") == done["status"]["podIP"]


def test_status_subresource_changes_status_only(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    emulator.api.create(
        "Pod", pod("held", ["true"], container={"image": "x:missing"}), emulator_namespace
    )
    core = emulator.core_v1()
    patched = core.patch_namespaced_pod_status(
        "held",
        emulator_namespace,
        {"status": {"message": "set by a test"}, "metadata": {"labels": {"ignored": "yes"}}},
    )
    assert patched.status.message == "set by a test"
    assert not (patched.metadata.labels or {}).get("ignored")
    main = emulator.api.patch("Pod", "held", {"status": {"message": "ignored"}}, emulator_namespace)
    assert main["status"]["message"] == "set by a test"


def test_failing_container_fails_the_pod_with_its_exit_code(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    emulator.api.create("Pod", pod("bad", python("raise SystemExit(3)")), emulator_namespace)
    failed = emulator.wait_for_pod_phase(emulator_namespace, "bad", "Failed")
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


def test_on_failure_restarts_with_back_off_until_success(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    # given a container that fails twice, then succeeds (it counts runs in an emptyDir)
    code = "import os,sys; p='/work/runs'; n=len(open(p).read()) if os.path.exists(p) else 0; open(p,'a').write('x'); sys.exit(0 if n>=2 else 1)"
    spec = pod(
        "flaky",
        python(code),
        restartPolicy="OnFailure",
        volumes=[{"name": "work", "emptyDir": {}}],
        container={"volumeMounts": [{"name": "work", "mountPath": "/work"}]},
    )
    emulator.api.create("Pod", spec, emulator_namespace)
    # then it passes through CrashLoopBackOff and ends Succeeded after two restarts
    emulator.wait_for_pod(
        emulator_namespace,
        "flaky",
        lambda p: any(
            (s["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff"
            for s in (p.get("status") or {}).get("containerStatuses") or []
        ),
        describe="CrashLoopBackOff",
    )
    done = emulator.wait_for_pod_phase(emulator_namespace, "flaky", "Succeeded")
    container = done["status"]["containerStatuses"][0]
    assert container["restartCount"] == 2
    assert container["state"]["terminated"]["exitCode"] == 0
    assert container["lastState"]["terminated"]["exitCode"] == 1
    assert "BackOff" in reasons(emulator, emulator_namespace, "flaky")


def test_init_containers_run_first_and_in_order(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    def append(word: str) -> list[str]:
        return python(f"open('/shared/order','a').write('{word} ')")

    spec = pod(
        "ordered",
        python("print(open('/shared/order').read())"),
        volumes=[{"name": "shared", "emptyDir": {}}],
        initContainers=[
            {
                "name": "one",
                "image": "python:3.11",
                "command": append("one"),
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
            },
            {
                "name": "two",
                "image": "python:3.11",
                "command": append("two"),
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
            },
        ],
        container={"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
    )
    emulator.api.create("Pod", spec, emulator_namespace)
    done = emulator.wait_for_pod_phase(emulator_namespace, "ordered", "Succeeded")
    assert emulator.pod_log(emulator_namespace, "ordered", container="main").strip() == "one two"
    assert [
        s["state"]["terminated"]["exitCode"] for s in done["status"]["initContainerStatuses"]
    ] == [0, 0]


def test_missing_image_backs_off_pulling(emulator: ClusterHandle, emulator_namespace: str) -> None:
    spec = pod("nopull", ["true"], container={"image": "x:missing"})
    emulator.api.create("Pod", spec, emulator_namespace)
    emulator.wait_for(
        "Event",
        emulator_namespace,
        lambda _e, ev: ev.get("message") == "Error: ImagePullBackOff",
        field_selector="involvedObject.name=nopull",
        describe="ImagePullBackOff event",
    )
    waiting = emulator.api.get("Pod", "nopull", emulator_namespace)["status"]["containerStatuses"][
        0
    ]["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert emulator.api.get("Pod", "nopull", emulator_namespace)["status"]["phase"] == "Pending"
    with pytest.raises(KubeApiError) as no_log:
        emulator.pod_log(emulator_namespace, "nopull")
    assert "is waiting to start: trying and failing to pull image" in str(no_log.value)


def test_env_resolves_downward_api_secrets_and_config_maps(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    api = emulator.api
    api.create(
        "Secret",
        {"metadata": {"name": "creds"}, "data": {"token": base64.b64encode(b"s3cret").decode()}},
        emulator_namespace,
    )
    api.create(
        "ConfigMap",
        {"metadata": {"name": "settings"}, "data": {"MODE": "fast", "LEVEL": "2"}},
        emulator_namespace,
    )
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "GREETING", "value": "mode=$(CFG_MODE)"},
    ]
    code = "import os; print(*(os.environ[k] for k in ['POD_IP','POD_NAME','POD_NAMESPACE','TOKEN','CFG_MODE','GREETING']))"
    spec = pod(
        "env",
        python(code),
        container={
            "env": env,
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        },
    )
    api.create("Pod", spec, emulator_namespace)
    done = emulator.wait_for_pod_phase(emulator_namespace, "env", "Succeeded")
    assert emulator.pod_log(emulator_namespace, "env").split() == [
        done["status"]["podIP"],
        "env",
        emulator_namespace,
        "s3cret",
        "fast",
        "mode=fast",
    ]


def test_missing_secret_holds_the_container_with_its_reason(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "token"}}}]
    emulator.api.create(
        "Pod", pod("nosecret", ["true"], container={"env": env}), emulator_namespace
    )
    waiting = emulator.wait_for_pod(
        emulator_namespace,
        "nosecret",
        lambda p: any(
            (s["state"].get("waiting") or {}).get("reason") == "CreateContainerConfigError"
            for s in (p.get("status") or {}).get("containerStatuses") or []
        ),
        describe="CreateContainerConfigError",
    )
    assert (
        waiting["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        == 'secret "absent" not found'
    )


def test_secret_and_config_map_volumes_appear_at_their_mount_paths(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    api = emulator.api
    api.create(
        "Secret", {"metadata": {"name": "tls"}, "stringData": {"ca.crt": "CA"}}, emulator_namespace
    )
    api.create(
        "ConfigMap",
        {"metadata": {"name": "conf"}, "data": {"servers.conf": "servers: []"}},
        emulator_namespace,
    )
    spec = pod(
        "volumes",
        [
            "sh",
            "-c",
            "cat /etc/tls/ca.crt; echo; cat /etc/conf/servers.conf; echo; echo written > /scratch/out; cat /scratch/out",
        ],
        volumes=[
            {"name": "tls", "secret": {"secretName": "tls"}},
            {"name": "conf", "configMap": {"name": "conf"}},
            {"name": "scratch", "emptyDir": {}},
        ],
        container={
            "volumeMounts": [
                {"name": "tls", "mountPath": "/etc/tls", "readOnly": True},
                {"name": "conf", "mountPath": "/etc/conf"},
                {"name": "scratch", "mountPath": "/scratch"},
            ]
        },
    )
    api.create("Pod", spec, emulator_namespace)
    emulator.wait_for_pod_phase(emulator_namespace, "volumes", "Succeeded")
    assert emulator.pod_log(emulator_namespace, "volumes").splitlines() == [
        "CA",
        "servers: []",
        "written",
    ]


def test_unschedulable_pod_gets_the_schedulers_reason_and_event(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    spec = pod("huge", ["true"], container={"resources": {"limits": {"bitfusion.io/gpu": "1000"}}})
    emulator.api.create("Pod", spec, emulator_namespace)
    event = emulator.wait_for_event(emulator_namespace, "huge", "FailedScheduling")
    assert event["message"] == "0/1 nodes are available: 1 Insufficient bitfusion.io/gpu."
    condition = next(
        c
        for c in emulator.api.get("Pod", "huge", emulator_namespace)["status"]["conditions"]
        if c["type"] == "PodScheduled"
    )
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")


def test_pending_pod_is_scheduled_when_capacity_frees(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    hog = pod(
        "hog", ["sleep", "60"], container={"resources": {"limits": {"bitfusion.io/gpu": "150"}}}
    )
    waiter = pod(
        "waiter", ["true"], container={"resources": {"limits": {"bitfusion.io/gpu": "100"}}}
    )
    emulator.api.create("Pod", hog, emulator_namespace)
    emulator.wait_for_pod_phase(emulator_namespace, "hog", "Running")
    emulator.api.create("Pod", waiter, emulator_namespace)
    emulator.wait_for_event(emulator_namespace, "waiter", "FailedScheduling")
    emulator.api.delete("Pod", "hog", emulator_namespace)
    emulator.wait_for_pod_phase(emulator_namespace, "waiter", "Succeeded")


def test_follow_streams_log_lines_as_they_are_written(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    # given a pod that prints a line, then waits for a file before printing the last one
    code = "import os,time; print('first', flush=True)\nwhile not os.path.exists('/gate/open'): time.sleep(0.05)\nprint('last')"
    spec = pod(
        "chatty",
        python(code),
        volumes=[{"name": "gate", "emptyDir": {}}],
        container={"volumeMounts": [{"name": "gate", "mountPath": "/gate"}]},
    )
    emulator.api.create("Pod", spec, emulator_namespace)
    running = emulator.wait_for_pod_phase(emulator_namespace, "chatty", "Running")
    follower = emulator.follow_log(emulator_namespace, "chatty")
    follower.wait_for_line("first")
    # when the gate opens, the follower gets the last line, then the stream ends with the container
    assert emulator.emulated is not None
    pod_dir = emulator.emulated.kubelets["node-1"].workers[running["metadata"]["uid"]].sandbox.dir
    (pod_dir / "volumes" / "gate" / "open").write_text("")
    assert follower.wait_for_end() == ["first", "last"]


def test_deletion_sends_sigterm_then_sigkill_after_the_grace_period(
    emulator: ClusterHandle, emulator_namespace: str
) -> None:
    # given a pod whose process ignores SIGTERM (and says so), with a 1 s grace period
    code = (
        "import os,signal,time\n"
        "signal.signal(signal.SIGTERM, lambda *a: os.write(1, b'got SIGTERM\\n'))\n"
        "print('ready', flush=True)\nwhile True: time.sleep(0.1)"
    )
    emulator.api.create("Pod", pod("stubborn", python(code)), emulator_namespace)
    running = emulator.wait_for_pod_phase(emulator_namespace, "stubborn", "Running")
    follower = emulator.follow_log(emulator_namespace, "stubborn")
    follower.wait_for_line("ready")
    # when it is deleted
    assert emulator.api.delete("Pod", "stubborn", emulator_namespace)
    # then its process gets SIGTERM, survives it, is killed after the grace period, and the pod goes
    assert follower.wait_for_end() == ["ready", "got SIGTERM"]
    emulator.wait_for_pod_gone(emulator_namespace, "stubborn")
    # having been marked terminating (deletionTimestamp, the grace period) before it went
    events = [
        (event.type, event.object["metadata"].get("deletionGracePeriodSeconds"))
        for event in emulator.api.watch(
            "Pod", emulator_namespace, field_selector="metadata.name=stubborn",
            resource_version=running["metadata"]["resourceVersion"], timeout_seconds=1,
        )
    ]  # fmt: skip
    assert ("MODIFIED", 1) in events
    assert events[-1][0] == "DELETED"
    assert "Killing" in reasons(emulator, emulator_namespace, "stubborn")
