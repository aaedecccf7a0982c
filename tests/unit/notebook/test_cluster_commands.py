"""``submit``/``jobs``/``logs``/``cancel`` against a scripted Kubernetes API: what they create,
show and delete, and how every failure becomes one line."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from bf_jupyter.kubeapi import KubeApiError, KubeUnavailable, WatchEvent
from bf_jupyter.notebook.cluster_commands import ClusterCommands
from bf_jupyter.notebook.magic_args import MagicError, parse_line
from bf_jupyter.notebook.metric_records import encode_record


@dataclass
class FakeKubeApi:
    """Stores objects; a created pod goes through ``pod_statuses`` and prints ``log_lines``."""

    pod_statuses: list[dict[str, Any]] = field(
        default_factory=lambda: [{"phase": "Pending"}, {"phase": "Running"}]
    )
    final_status: dict[str, Any] = field(default_factory=lambda: {"phase": "Succeeded"})
    log_lines: list[str] = field(default_factory=list)
    create_error: Exception | None = None
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    deleted: list[tuple[str, str, str | None]] = field(default_factory=list)
    closed: bool = False

    def create(self, kind: str, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        if self.create_error is not None:
            raise self.create_error
        self.objects[(kind, namespace, body["metadata"]["name"])] = body
        if kind == "Job":  # the job controller's pod
            name = body["metadata"]["name"]
            pod = {
                "metadata": {"name": f"{name}-p0d", "labels": {"job-name": name}},
                "spec": body["spec"]["template"]["spec"],
            }
            self.objects[("Pod", namespace, f"{name}-p0d")] = pod
        return body

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        try:
            obj = self.objects[(kind, namespace, name)]
        except KeyError:
            raise KubeApiError(
                f'{kind.lower()}s "{name}" not found', status=404, reason="NotFound"
            ) from None
        if kind == "Pod":
            return {**obj, "status": self.final_status}
        return obj

    def list(self, kind: str, namespace: str, *, label_selector: str = "") -> list[dict[str, Any]]:
        wanted = dict(term.split("=") for term in label_selector.split(",") if term)
        return [
            obj
            for (k, ns, _), obj in self.objects.items()
            if k == kind
            and ns == namespace
            and all(
                obj["metadata"].get("labels", {}).get(key) == value for key, value in wanted.items()
            )
        ]

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str,
        *,
        propagation_policy: str | None = None,
        uid: str | None = None,
    ) -> bool:
        current = self.objects.get((kind, namespace, name))
        if uid and current is not None and current["metadata"].get("uid") != uid:
            raise KubeApiError(
                "Precondition failed: UID in precondition", status=409, reason="Conflict"
            )
        self.deleted.append((kind, name, propagation_policy))
        return self.objects.pop((kind, namespace, name), None) is not None

    def watch(self, kind: str, namespace: str, **selector: Any) -> Iterator[WatchEvent]:
        pods = [
            obj
            for (k, ns, name), obj in self.objects.items()
            if k == "Pod"
            and ns == namespace
            and (
                selector.get("field_selector") == f"metadata.name={name}"
                or selector.get("label_selector", "x")
                == f"job-name={obj['metadata'].get('labels', {}).get('job-name')}"
            )
        ]
        for status in self.pod_statuses:
            yield WatchEvent("MODIFIED", {**pods[0], "status": status})

    def pod_log(
        self, name: str, namespace: str, *, container: str | None = None, follow: bool = False
    ) -> Iterator[str]:
        assert container == "main"
        yield from self.log_lines

    def open_pod_log(self, name: str, namespace: str, **kwargs: Any) -> _Lines:
        return _Lines(self.pod_log(name, namespace, **kwargs))

    def close(self) -> None:
        self.closed = True


@dataclass
class _Lines:
    """A closable line stream over ``lines`` (what ``KubeApi.open_pod_log`` returns)."""

    lines: Iterator[str]
    closed: bool = False

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def close(self) -> None:
        self.closed = True


def _commands(api: FakeKubeApi | None, *, namespace: str = "") -> ClusterCommands:
    def connect() -> FakeKubeApi:
        if api is None:
            raise KubeUnavailable(
                "no Kubernetes API configured: not in a pod and kubeconfig ~/.kube/config is unusable"
            )
        return api

    return ClusterCommands(
        namespace=namespace, connect=connect, default_namespace=lambda: "team", user="ada"
    )


def _run(commands: ClusterCommands, line: str) -> None:
    commands.run(parse_line(line))


def test_submit_creates_the_pod_follows_its_log_and_turns_records_into_curves(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = FakeKubeApi(
        log_lines=[
            "[INFO] 2026-01-01T00:00:00Z Locked 1 GPUs with partial memory 0.5",
            encode_record("begin", {"t": 1.0, "epochs": 1, "steps": 2, "batch_size": 8}),
            "Epoch 1/1",
            encode_record(
                "epoch", {"t": 2.0, "epoch": 0, "metrics": {"loss": 0.5, "val_loss": 0.25}}
            ),
        ]
    )

    _run(_commands(api), "submit 1x50% --image reg/tf:1 --name train-a -- python train.py")

    pod = api.objects[("Pod", "team", "train-a")]
    assert pod["spec"]["containers"][0]["command"] == ["python", "train.py"]
    out = capsys.readouterr().out
    assert "created pod train-a in namespace team on 1x50%" in out
    assert "Locked 1 GPUs" in out and "Epoch 1/1" in out
    assert "BF-METRICS" not in out
    assert "epoch 1/1: loss 0.5 · val_loss 0.25" in out
    assert out.rstrip().endswith("pod train-a succeeded")
    assert api.closed


def test_submit_detached_returns_at_once_with_how_to_follow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = FakeKubeApi(pod_statuses=[])

    _run(_commands(api), "submit 1 --image img --name t1 --detach -- python x.py")

    out = capsys.readouterr().out
    assert "follow: %bitfusion logs t1 -f" in out and "%bitfusion cancel t1" in out


def test_a_quota_refusal_is_the_api_message_on_one_line() -> None:
    message = (
        'pods "t1" is forbidden: exceeded quota: gpu-quota, requested: requests.bitfusion.io/gpu=50, '
        "used: requests.bitfusion.io/gpu=200, limited: requests.bitfusion.io/gpu=200"
    )
    api = FakeKubeApi(create_error=KubeApiError(message, status=403, reason="Forbidden"))

    with pytest.raises(MagicError) as refused:
        _run(_commands(api), "submit 1x50% --image img --name t1 -- python x.py")

    assert str(refused.value) == f"%bitfusion submit: {message}"
    assert api.objects == {}


def test_submit_on_hami_puts_hamis_keys_on_the_pod_and_nothing_of_bitfusion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = FakeKubeApi(pod_statuses=[])

    _run(
        _commands(api),
        "submit 1x8Gi cores=30 --backend hami --image img --name h1 --detach -- python x.py",
    )

    pod = api.objects[("Pod", "team", "h1")]
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {
        "nvidia.com/gpu": "1",
        "nvidia.com/gpumem": "8192",
        "nvidia.com/gpucores": "30",
    }
    assert not any("bitfusion" in key for key in pod["metadata"]["annotations"])
    assert "created pod h1 in namespace team on 1x8Gi cores=30 (HAMi)" in capsys.readouterr().out


def test_submit_takes_the_kernels_backend_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BF_GPU_BACKEND", "nvidia")
    api = FakeKubeApi(pod_statuses=[])

    _run(_commands(api), "submit mig-1g.10gb --image img --name m1 --detach -- x")

    pod = api.objects[("Pod", "team", "m1")]
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/mig-1g.10gb": "1"}


def test_submit_maps_a_memory_slice_onto_the_mig_profiles_the_nodes_offer() -> None:
    api = FakeKubeApi(pod_statuses=[])
    node = {
        "metadata": {"name": "gpu-1", "labels": {}},
        "status": {"allocatable": {"nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-3g.40gb": "2"}},
    }
    api.list = lambda kind, namespace="", **_: [node] if kind == "Node" else []  # type: ignore[method-assign]

    _run(_commands(api), "submit 1x20Gi --backend nvidia --image img --name m2 --detach -- x")

    pod = api.objects[("Pod", "team", "m2")]
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/mig-3g.40gb": "1"}


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (
            "submit 1x50% --backend nvidia-time-slicing --image i -- x",
            "%bitfusion submit: gpu-percent 50% cannot be honoured by NVIDIA time-slicing: ask for",
        ),
        (
            "submit 1 --backend cuda --image i -- x",
            "%bitfusion submit: backend 'cuda' is not known: use one of",
        ),
    ],
)
def test_submit_refuses_what_the_backend_cannot_serve_in_one_line_creating_nothing(
    line: str, says: str
) -> None:
    api = FakeKubeApi(pod_statuses=[])

    with pytest.raises(MagicError) as refused:
        _run(_commands(api), line)

    assert str(refused.value).startswith(says)
    assert api.objects == {}


def test_without_a_cluster_every_cluster_subcommand_says_so_in_one_line() -> None:
    for line in ("submit 1 --image i -- x", "jobs", "logs a", "cancel a"):
        with pytest.raises(MagicError, match=r"^%bitfusion \w+: no Kubernetes API configured"):
            _run(_commands(None), line)


def test_an_image_that_cannot_be_pulled_is_reported_and_the_pod_deleted() -> None:
    api = FakeKubeApi(
        pod_statuses=[
            {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "main",
                        "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}},
                    }
                ],
            }
        ]
    )

    with pytest.raises(MagicError) as refused:
        _run(_commands(api), "submit 1 --image reg/nope:1 --name t2 -- python x.py")

    assert str(refused.value) == (
        "%bitfusion submit: image reg/nope:1 cannot be pulled (ErrImagePull): not found; deleted pod t2"
    )
    assert ("Pod", "team", "t2") not in api.objects


def test_a_failed_pod_fails_the_cell_with_its_exit_code() -> None:
    api = FakeKubeApi(
        final_status={
            "phase": "Failed",
            "containerStatuses": [{"state": {"terminated": {"exitCode": 2, "reason": "Error"}}}],
        }
    )

    with pytest.raises(
        MagicError, match=r"^%bitfusion submit: pod t3 failed \(exit code 2, Error\)$"
    ):
        _run(_commands(api), "submit 1 --image img --name t3 -- python x.py")


def test_submit_as_a_job_follows_the_pod_the_job_made(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeKubeApi(log_lines=["hello from the job"])

    _run(_commands(api), "submit 1 --image img --name j1 --job -- python x.py")

    assert api.objects[("Job", "team", "j1")]["kind"] == "Job"
    out = capsys.readouterr().out
    assert "created job j1" in out and "hello from the job" in out and "job j1 succeeded" in out


def test_the_namespace_comes_from_the_option_then_the_configuration_then_the_kernel() -> None:
    api = FakeKubeApi(pod_statuses=[])

    _run(_commands(api, namespace="configured"), "submit 1 --image i --name a --detach -- x")
    _run(
        _commands(api, namespace="configured"),
        "submit 1 --image i --name b --namespace given --detach -- x",
    )
    _run(_commands(api), "submit 1 --image i --name c --detach -- x")

    assert {(ns, name) for (_, ns, name) in api.objects} == {
        ("configured", "a"),
        ("given", "b"),
        ("team", "c"),
    }


def test_jobs_lists_your_work_and_hides_the_pods_of_jobs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = FakeKubeApi(pod_statuses=[])
    _run(_commands(api), "submit 1x50% --image img --name mine --detach -- x")
    _run(_commands(api), "submit 1 --image img --name batch --job --detach -- x")
    api.objects[("Pod", "team", "batch-p0d")]["metadata"]["ownerReferences"] = [
        {"kind": "Job", "name": "batch"}
    ]
    theirs = ClusterCommands(connect=lambda: api, default_namespace=lambda: "team", user="bob")
    theirs.run(parse_line("submit 1 --image img --name bobs --detach -- x"))
    capsys.readouterr()

    _run(_commands(api), "jobs")
    mine = capsys.readouterr().out
    _run(_commands(api), "jobs --all")
    everyone = capsys.readouterr().out

    assert "batch" in mine and "mine" in mine and "bobs" not in mine and "batch-p0d" not in mine
    assert "bobs" in everyone
    assert "1x50%" in mine


def test_jobs_says_when_there_is_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    _run(_commands(FakeKubeApi()), "jobs")

    assert capsys.readouterr().out.strip() == "no submitted work (ada's) in namespace team"


def test_logs_of_an_unknown_name_is_one_line() -> None:
    with pytest.raises(
        MagicError, match=r"^%bitfusion logs: no pod or job named ghost in namespace team$"
    ):
        _run(_commands(FakeKubeApi()), "logs ghost")


def test_cancel_deletes_a_job_with_its_pods(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeKubeApi(pod_statuses=[])
    _run(_commands(api), "submit 1 --image img --name j2 --job --detach -- x")

    _run(_commands(api), "cancel j2")

    assert ("Job", "j2", "Background") in api.deleted
    assert "deleted job j2 in namespace team" in capsys.readouterr().out


OURS = {
    "app.kubernetes.io/name": "bf-jupyter",
    "app.kubernetes.io/component": "workload",
    "bf-jupyter/user": "ada",
}


@pytest.mark.parametrize("kind", ["Pod", "Job"])
@pytest.mark.parametrize(
    ("labels", "says"),
    [
        ({"app": "db"}, "was not submitted with %bitfusion submit (it lacks the labels"),
        ({}, "was not submitted with %bitfusion submit"),
        ({**OURS, "bf-jupyter/user": "bob"}, "was submitted by bob, not by you (ada)"),
        (
            {"app.kubernetes.io/component": "workload", "bf-jupyter/user": "ada"},
            "was not submitted with %bitfusion submit",
        ),
        (
            {**OURS, "app.kubernetes.io/name": "other-tool"},
            "was not submitted with %bitfusion submit",
        ),
        (
            {**{k: v for k, v in OURS.items() if k != "bf-jupyter/user"}},
            "carries no bf-jupyter/user",
        ),
        ({**OURS, "bf-jupyter/user": ""}, "carries no bf-jupyter/user"),
    ],
    ids=[
        "another app",
        "no labels",
        "another user's workload",
        "another tool's workload label",
        "our component, another name",
        "no user label",
        "empty user label",
    ],
)
def test_cancel_deletes_only_this_users_submitted_work(
    kind: str, labels: dict[str, str], says: str
) -> None:
    api = FakeKubeApi()
    api.objects[(kind, "team", "theirs")] = {"metadata": {"name": "theirs", "labels": labels}}

    with pytest.raises(MagicError) as refused:
        _run(_commands(api), "cancel theirs")

    line = str(refused.value)
    assert (
        line == f"%bitfusion cancel: {kind.lower()} theirs in team {says}" + line.split(says, 1)[1]
    )
    assert line.endswith(": not deleting it") and "\n" not in line
    assert api.deleted == []
    assert (kind, "team", "theirs") in api.objects


def test_cancel_deletes_only_the_object_it_checked() -> None:
    # given our pod, replaced (same name, another uid) between the check and the deletion
    api = FakeKubeApi()
    api.objects[("Pod", "team", "w")] = {"metadata": {"name": "w", "uid": "1", "labels": OURS}}
    real_get = api.get

    reads: list[str] = []

    def get_then_replace(kind: str, name: str, namespace: str) -> dict[str, Any]:
        obj = real_get(kind, name, namespace)
        reads.append(kind)
        if len(reads) == 2:  # the ownership check: replaced right after it
            api.objects[("Pod", "team", "w")] = {"metadata": {"name": "w", "uid": "2"}}
        return obj

    api.get = get_then_replace  # type: ignore[method-assign]

    with pytest.raises(MagicError, match="was replaced since it was checked: not deleting it"):
        _run(_commands(api), "cancel w")
    assert api.deleted == []


def _stop_of_logs(api: FakeKubeApi, monkeypatch: pytest.MonkeyPatch, name: str) -> Any:
    """The Stop handler that ``logs NAME`` gives its curves (None: no Stop button)."""
    from bf_jupyter.notebook.output_stream import CurveFeed

    given: list[Any] = []
    real_feed = CurveFeed

    def feed(**kwargs: Any) -> Any:
        given.append(kwargs["stop"])
        return real_feed(**kwargs)

    monkeypatch.setattr("bf_jupyter.notebook.cluster_commands.CurveFeed", feed)
    _run(_commands(api), f"logs {name}")
    return given[0]


def test_logs_offers_stop_only_for_this_users_own_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = FakeKubeApi(pod_statuses=[{"phase": "Running"}])
    for name, labels in (
        ("mine", OURS),
        ("bobs", {**OURS, "bf-jupyter/user": "bob"}),
        ("tool", {"app.kubernetes.io/component": "workload"}),
    ):
        api.objects[("Pod", "team", name)] = {"metadata": {"name": name, "labels": labels}}

    assert _stop_of_logs(api, monkeypatch, "bobs") is None
    assert _stop_of_logs(api, monkeypatch, "tool") is None
    stop = _stop_of_logs(api, monkeypatch, "mine")
    assert stop is not None
    stop()
    assert api.deleted == [("Pod", "mine", "Background")]


def test_stop_refuses_in_one_line_when_the_name_now_holds_someone_elses_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = FakeKubeApi(pod_statuses=[{"phase": "Running"}])
    api.objects[("Pod", "team", "w")] = {"metadata": {"name": "w", "labels": OURS}}
    stop = _stop_of_logs(api, monkeypatch, "w")
    capsys.readouterr()
    # when the pod is replaced by another user's of the same name, then Stop is pressed
    api.objects[("Pod", "team", "w")] = {
        "metadata": {"name": "w", "labels": {**OURS, "bf-jupyter/user": "bob"}}
    }
    stop()

    assert api.deleted == []
    assert capsys.readouterr().err.strip() == (
        "%bitfusion logs: pod w in team was submitted by bob, not by you (ada): not deleting it"
    )


def test_status_quota_line_never_fails() -> None:
    assert _commands(None).quota_line(None) == ("-", "no Kubernetes cluster configured")
    assert _commands(FakeKubeApi()).quota_line("ml") == ("ml", "no bitfusion.io/gpu quota")


def test_logs_without_follow_of_a_running_pod_prints_what_there_is_and_returns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = FakeKubeApi(
        pod_statuses=[], log_lines=["epoch 1 done"], final_status={"phase": "Running"}
    )
    _run(_commands(api), "submit 1 --image img --name r1 --detach -- x")
    api.pod_statuses = [{"phase": "Running"}]

    _run(_commands(api), "logs r1")

    out = capsys.readouterr().out
    assert "epoch 1 done" in out
    assert "succeeded" not in out and "failed" not in out


def test_a_pod_deleted_while_followed_ends_the_follow_quietly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = FakeKubeApi(log_lines=["training"])
    real_get = api.get

    def get_after_deletion(kind: str, name: str, namespace: str) -> dict[str, Any]:
        if kind == "Pod" and api.log_lines == []:
            raise KubeApiError(f'pods "{name}" not found', status=404, reason="NotFound")
        return real_get(kind, name, namespace)

    def log_then_delete(name: str, namespace: str, **_: Any) -> Iterator[str]:
        yield "training"
        api.log_lines = []  # the pod is gone once its log ends

    api.get = get_after_deletion  # type: ignore[method-assign]
    api.pod_log = log_then_delete  # type: ignore[method-assign]

    _run(_commands(api), "submit 1 --image img --name d1 -- x")

    assert capsys.readouterr().out.rstrip().endswith("pod d1 was deleted")


# ----- interrupting a followed log leaves nothing behind -------------------------------------------


class _SocketResponse:
    """A streaming HTTP response read from one end of a socket pair (the API server's side is
    the other end, which never closes: a followed log of a pod that runs on)."""

    def __init__(self) -> None:
        self.sock, self.server_side = socket.socketpair()
        self.server_side.sendall(b"epoch 1\n")
        self.connection = SimpleNamespace(sock=self.sock)

    def stream(self, amt: int | None = None, decode_content: bool = False) -> Iterator[bytes]:
        while chunk := self.sock.recv(4096):
            yield chunk

    def close(self) -> None:
        self.sock.close()
        self.server_side.close()


def _open_sockets() -> int:
    return sum(
        os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        for fd in os.listdir("/proc/self/fd")
        if os.path.exists(f"/proc/self/fd/{fd}")
    )


def test_twenty_interrupted_follows_leave_no_thread_and_no_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bf_jupyter.kubestreams import LineStream
    from bf_jupyter.notebook.output_stream import OutputRouter

    api = FakeKubeApi(pod_statuses=[{"phase": "Running"}])
    api.objects[("Pod", "team", "w")] = {"metadata": {"name": "w", "labels": OURS}}
    api.open_pod_log = lambda *_, **__: LineStream(_SocketResponse(), lambda e: e)  # type: ignore[method-assign,assignment]

    def interrupted(self: Any, stream: str, text: str) -> None:
        raise KeyboardInterrupt  # Ctrl-C / the kernel's interrupt, in the cell's thread

    monkeypatch.setattr(OutputRouter, "line", interrupted)
    threads, sockets = threading.active_count(), _open_sockets()

    for _ in range(20):
        with pytest.raises(MagicError, match="stopped following w; it keeps running"):
            _run(_commands(api), "logs w -f")

    assert threading.active_count() == threads
    assert _open_sockets() == sockets
