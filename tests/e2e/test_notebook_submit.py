"""``%bitfusion submit``, ``jobs``, ``logs`` and ``cancel`` from an IPython shell against the cluster
(the test cluster with our cluster side and ``bitfusion-sim``, or ``$BF_E2E_KUBECONFIG``)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.contract import QUOTA_RESOURCE
from bf_jupyter.notebook.metric_records import encode_record

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle

TRAIN = "; ".join(
    [
        "print('training on', __import__('os').environ.get('BF_SIM_SLICE'), flush=True)",
        *(
            f"print({line!r}, flush=True)"
            for line in (
                encode_record("begin", {"t": 1.0, "epochs": 2, "steps": 1, "batch_size": 4}),
                encode_record(
                    "epoch", {"t": 2.0, "epoch": 0, "metrics": {"loss": 0.5, "val_loss": 0.6}}
                ),
                encode_record(
                    "epoch", {"t": 3.0, "epoch": 1, "metrics": {"loss": 0.25, "val_loss": 0.3}}
                ),
                encode_record("end", {"t": 4.0, "stopped": False}),
            )
        ),
    ]
)


@pytest.fixture
def shell(cluster: ClusterHandle, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An IPython shell whose magic talks to the test cluster, in the test's namespace."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "bf_jupyter")
    ipython.run_line_magic("config", f"BitfusionMagics.namespace = {namespace!r}")
    yield ipython
    ipython.run_line_magic("unload_ext", "bf_jupyter")
    InteractiveShell.clear_instance()


def _output(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_submit_runs_the_pod_on_a_slice_and_shows_its_log_and_curves(
    shell: Any, cluster: ClusterHandle, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell(
        f"%bitfusion submit 1x50% --image tensorflow/tensorflow:2.16.1 --name train -- python -c {shlex.quote(TRAIN)}"
    )

    out = _output(capsys)
    assert result.error_in_exec is None, out
    assert f"created pod train in namespace {namespace} on 1x50%" in out
    assert "Locked 1 GPUs" in out  # the webhook wrapped the command in the client
    assert "training on 1x50%" in out
    assert not any(line.startswith("BF-METRICS") for line in out.splitlines())  # records hidden
    assert "epoch 2/2: loss 0.25 · val_loss 0.3" in out
    assert out.rstrip().endswith("pod train succeeded")


def test_submit_as_a_job_follows_the_jobs_pod(
    shell: Any, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell(
        "%bitfusion submit -n 1 -p 0.25 --image img:1 --name batch --job -- python -c \"print('from the job')\""
    )

    out = _output(capsys)
    assert result.error_in_exec is None, out
    assert "from the job" in out and "job batch succeeded" in out


def test_jobs_lists_submitted_work_and_cancel_deletes_it(
    shell: Any, cluster: ClusterHandle, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_cell(
        "%bitfusion submit 1x50% --image img:1 --name sleeper --detach -- python -c 'import time; time.sleep(300)'"
    )
    cluster.wait_for_pod_phase(namespace, "sleeper", ("Running",), timeout=60)
    capsys.readouterr()

    shell.run_cell("%bitfusion jobs")
    listing = _output(capsys)
    shell.run_cell("%bitfusion cancel sleeper")
    cancelled = _output(capsys)

    row = next(line for line in listing.splitlines() if line.startswith("sleeper"))
    assert row.split()[:4] == ["sleeper", "Pod", "Running", "1x50%"]
    assert f"deleted pod sleeper in namespace {namespace}" in cancelled
    cluster.wait_for_pod_gone(namespace, "sleeper", timeout=60)


def test_a_quota_refusal_is_the_api_servers_message_in_one_line(
    shell: Any, cluster: ClusterHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    limited = cluster.create_namespace_with_quota({f"requests.{QUOTA_RESOURCE}": 100})
    try:
        result = shell.run_cell(
            f"%bitfusion submit 2x100% --image img:1 --namespace {limited} -- python -c 'pass'"
        )
        lines = [line for line in _output(capsys).splitlines() if line.strip()]
        assert result.error_in_exec is not None
        assert len(lines) == 1
        # the API server's own words: our validating webhook's denial, or the quota admission's
        assert "%bitfusion submit:" in lines[0] and "quota" in lines[0].lower()
        assert cluster.api.list("Pod", limited) == []
    finally:
        cluster.delete_namespace(limited)


def test_an_image_that_cannot_be_pulled_is_reported_and_nothing_is_left(
    shell: Any, cluster: ClusterHandle, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell(
        "%bitfusion submit 1 --image registry.local/nope:missing --name nope -- python -c 'pass'"
    )

    out = _output(capsys)
    assert result.error_in_exec is not None
    assert "%bitfusion submit: image registry.local/nope:missing cannot be pulled" in out
    assert "deleted pod nope" in out
    cluster.wait_for_pod_gone(namespace, "nope", timeout=60)


def test_without_a_cluster_it_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    ipython: Any = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "bf_jupyter")
    try:
        result = ipython.run_cell("%bitfusion jobs")
    finally:
        ipython.run_line_magic("unload_ext", "bf_jupyter")
        InteractiveShell.clear_instance()

    assert result.error_in_exec is not None
    assert "%bitfusion jobs: no Kubernetes API configured" in _output(capsys)
