"""The process-kubelet on a real control plane: pod lifecycle, restarts, init containers, images
that cannot be pulled, env and volumes, logs through the apiserver, graceful deletion."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import pytest

from bf_jupyter.kubeapi import KubeApiError
from tests.cluster.kubelet.pod_specs import NODE, pod, python

if TYPE_CHECKING:
    from tests.cluster.kubelet import ProcessKubelet
    from tests.support.cluster_handle import ClusterHandle


def reasons(cluster: ClusterHandle, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in cluster.events_for(namespace, name)]


def test_pod_runs_to_success_with_status_and_events_like_a_kubelet(
    cluster: ClusterHandle, namespace: str
) -> None:
    created = cluster.api.create("Pod", pod("ok", python("print('hello from the pod')")), namespace)
    done = cluster.wait_for_pod_phase(namespace, "ok", "Succeeded")
    status = done["status"]
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert status["podIP"].startswith("127.") and status["podIP"] != "127.0.0.1"
    assert status["hostIP"] == "127.0.0.1"
    assert done["spec"]["nodeName"] == NODE
    assert cluster.pod_log(namespace, "ok") == "hello from the pod"
    cluster.wait_for_event(namespace, "ok", "Started")
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(reasons(cluster, namespace, "ok"))
    # the phases it went through, replayed from its creation's resourceVersion
    phases: list[str] = []
    for event in cluster.api.watch(
        "Pod", namespace, field_selector="metadata.name=ok",
        resource_version=created["metadata"]["resourceVersion"], timeout_seconds=1,
    ):  # fmt: skip
        phase = event.object["status"]["phase"]
        if not phases or phases[-1] != phase:
            phases.append(phase)
    assert phases == ["Pending", "Running", "Succeeded"]


def test_pod_can_serve_on_its_own_address(cluster: ClusterHandle, namespace: str) -> None:
    code = "import os,socket; s=socket.socket(); s.bind((os.environ['POD_IP'], 0)); s.listen(); print(s.getsockname()[0])"
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    cluster.api.create("Pod", pod("server", python(code), container={"env": env}), namespace)
    done = cluster.wait_for_pod_phase(namespace, "server", ("Succeeded", "Failed"))
    assert cluster.pod_log(namespace, "server") == done["status"]["podIP"]


def test_failing_container_fails_the_pod_with_its_exit_code(
    cluster: ClusterHandle, namespace: str
) -> None:
    cluster.api.create("Pod", pod("bad", python("raise SystemExit(3)")), namespace)
    failed = cluster.wait_for_pod_phase(namespace, "bad", "Failed")
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


def test_on_failure_restarts_with_back_off_and_keeps_the_previous_log(
    cluster: ClusterHandle, namespace: str
) -> None:
    # given a container that fails twice, then succeeds (it counts runs in an emptyDir)
    code = "import os,sys; p='/work/runs'; n=len(open(p).read()) if os.path.exists(p) else 0; open(p,'a').write('x'); print('run', n); sys.exit(0 if n>=2 else 1)"
    spec = pod(
        "flaky",
        python(code),
        restartPolicy="OnFailure",
        volumes=[{"name": "work", "emptyDir": {}}],
        container={"volumeMounts": [{"name": "work", "mountPath": "/work"}]},
    )
    cluster.api.create("Pod", spec, namespace)
    # then it passes through CrashLoopBackOff and ends Succeeded after two restarts
    cluster.wait_for_pod(
        namespace,
        "flaky",
        lambda p: any(
            (s["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff"
            for s in (p.get("status") or {}).get("containerStatuses") or []
        ),
        describe="CrashLoopBackOff",
    )
    done = cluster.wait_for_pod_phase(namespace, "flaky", "Succeeded")
    container = done["status"]["containerStatuses"][0]
    assert container["restartCount"] == 2
    assert container["state"]["terminated"]["exitCode"] == 0
    assert container["lastState"]["terminated"]["exitCode"] == 1
    assert "BackOff" in reasons(cluster, namespace, "flaky")
    # and the previous run's log is still served
    core = cluster.core_v1()
    assert core.read_namespaced_pod_log("flaky", namespace, previous=True) == "run 1\n"
    assert core.read_namespaced_pod_log("flaky", namespace, tail_lines=1) == "run 2\n"


def test_init_containers_run_first_and_in_order(cluster: ClusterHandle, namespace: str) -> None:
    def append(word: str) -> list[str]:
        return python(f"open('/shared/order','a').write('{word} ')")

    mounts = [{"name": "shared", "mountPath": "/shared"}]
    spec = pod(
        "ordered",
        python("print(open('/shared/order').read())"),
        volumes=[{"name": "shared", "emptyDir": {}}],
        initContainers=[
            {
                "name": "one",
                "image": "python:3.11",
                "command": append("one"),
                "volumeMounts": mounts,
            },
            {
                "name": "two",
                "image": "python:3.11",
                "command": append("two"),
                "volumeMounts": mounts,
            },
        ],
        container={"volumeMounts": mounts},
    )
    cluster.api.create("Pod", spec, namespace)
    done = cluster.wait_for_pod_phase(namespace, "ordered", "Succeeded")
    assert cluster.pod_log(namespace, "ordered", container="main").strip() == "one two"
    assert [
        s["state"]["terminated"]["exitCode"] for s in done["status"]["initContainerStatuses"]
    ] == [0, 0]


def test_missing_image_backs_off_pulling(cluster: ClusterHandle, namespace: str) -> None:
    cluster.api.create("Pod", pod("nopull", ["true"], container={"image": "x:missing"}), namespace)
    cluster.wait_for(
        "Event",
        namespace,
        lambda _e, ev: ev.get("message") == "Error: ImagePullBackOff",
        field_selector="involvedObject.name=nopull",
        describe="ImagePullBackOff event",
    )
    current = cluster.api.get("Pod", "nopull", namespace)
    waiting = current["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert current["status"]["phase"] == "Pending"
    # the apiserver hands on the kubelet's answer to a log request
    with pytest.raises(KubeApiError) as no_log:
        cluster.pod_log(namespace, "nopull")
    assert no_log.value.status == 400
    assert "is waiting to start: trying and failing to pull image" in str(no_log.value)


def test_env_resolves_downward_api_secrets_and_config_maps(
    cluster: ClusterHandle, namespace: str
) -> None:
    api = cluster.api
    secret = {
        "metadata": {"name": "creds"},
        "data": {"token": base64.b64encode(b"s3cret").decode()},
    }
    api.create("Secret", secret, namespace)
    api.create("ConfigMap", {"metadata": {"name": "settings"}, "data": {"MODE": "fast"}}, namespace)
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "GREETING", "value": "mode=$(CFG_MODE)"},
    ]
    code = "import os; print(*(os.environ[k] for k in ['POD_IP','POD_NAME','POD_NAMESPACE','NODE','TOKEN','CFG_MODE','GREETING']))"
    from_config = [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}]
    spec = pod("env", python(code), container={"env": env, "envFrom": from_config})
    api.create("Pod", spec, namespace)
    done = cluster.wait_for_pod_phase(namespace, "env", "Succeeded")
    assert cluster.pod_log(namespace, "env").split() == [
        done["status"]["podIP"], "env", namespace, NODE, "s3cret", "fast", "mode=fast",
    ]  # fmt: skip


def test_missing_secret_holds_the_container_with_its_reason(
    cluster: ClusterHandle, namespace: str
) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "token"}}}]
    cluster.api.create("Pod", pod("nosecret", ["true"], container={"env": env}), namespace)
    waiting = cluster.wait_for_pod(
        namespace,
        "nosecret",
        lambda p: any(
            (s["state"].get("waiting") or {}).get("reason") == "CreateContainerConfigError"
            for s in (p.get("status") or {}).get("containerStatuses") or []
        ),
        describe="CreateContainerConfigError",
    )
    message = waiting["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert message == 'secret "absent" not found'


def test_secret_config_map_and_projected_volumes_appear_at_their_mount_paths(
    cluster: ClusterHandle, namespace: str
) -> None:
    api = cluster.api
    api.create("Secret", {"metadata": {"name": "tls"}, "stringData": {"ca.crt": "CA"}}, namespace)
    conf = {"metadata": {"name": "conf"}, "data": {"servers.conf": "servers: []"}}
    api.create("ConfigMap", conf, namespace)
    script = (
        "cat /etc/tls/ca.crt; echo; cat /etc/conf/servers.conf; echo; echo written > /scratch/out;"
        " cat /scratch/out; cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo"
    )
    spec = pod(
        "volumes",
        ["sh", "-c", script],
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
    api.create("Pod", spec, namespace)
    cluster.wait_for_pod_phase(namespace, "volumes", "Succeeded")
    # the last line comes from the kube-api-access projected volume the ServiceAccount admission added
    assert cluster.pod_log(namespace, "volumes").splitlines() == [
        "CA", "servers: []", "written", namespace,
    ]  # fmt: skip


def test_follow_streams_log_lines_as_they_are_written(
    cluster: ClusterHandle, namespace: str, kubelet: ProcessKubelet
) -> None:
    # given a pod that prints a line, then waits for a file before printing the last one
    code = "import os,time; print('first', flush=True)\nwhile not os.path.exists('/gate/open'): time.sleep(0.05)\nprint('last')"
    spec = pod(
        "chatty",
        python(code),
        volumes=[{"name": "gate", "emptyDir": {}}],
        container={"volumeMounts": [{"name": "gate", "mountPath": "/gate"}]},
    )
    cluster.api.create("Pod", spec, namespace)
    running = cluster.wait_for_pod_phase(namespace, "chatty", "Running")
    follower = cluster.follow_log(namespace, "chatty")
    follower.wait_for_line("first")
    # when the gate opens, the follower gets the last line, then the stream ends with the container
    (kubelet.pod_dir(running["metadata"]["uid"]) / "volumes" / "gate" / "open").write_text("")
    assert follower.wait_for_end() == ["first", "last"]


def test_deletion_sends_sigterm_then_sigkill_after_the_grace_period(
    cluster: ClusterHandle, namespace: str
) -> None:
    # given a pod whose process ignores SIGTERM (and says so), with a 1 s grace period
    code = (
        "import os,signal,time\n"
        "signal.signal(signal.SIGTERM, lambda *a: os.write(1, b'got SIGTERM\\n'))\n"
        "print('ready', flush=True)\nwhile True: time.sleep(0.1)"
    )
    cluster.api.create("Pod", pod("stubborn", python(code)), namespace)
    running = cluster.wait_for_pod_phase(namespace, "stubborn", "Running")
    follower = cluster.follow_log(namespace, "stubborn")
    follower.wait_for_line("ready")
    # when it is deleted
    assert cluster.api.delete("Pod", "stubborn", namespace)
    # then it got SIGTERM, was killed after the grace period, and the kubelet removed the pod
    assert follower.wait_for_end() == ["ready", "got SIGTERM"]
    cluster.wait_for_pod_gone(namespace, "stubborn")
    events = [
        (event.type, event.object["metadata"].get("deletionGracePeriodSeconds"))
        for event in cluster.api.watch(
            "Pod", namespace, field_selector="metadata.name=stubborn",
            resource_version=running["metadata"]["resourceVersion"], timeout_seconds=1,
        )
    ]  # fmt: skip
    assert ("MODIFIED", 1) in events
    assert events[-1][0] == "DELETED"
    assert "Killing" in reasons(cluster, namespace, "stubborn")
