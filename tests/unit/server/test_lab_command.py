"""``bf-jupyter lab``: the backend setting, JupyterLab's own options passed through, a first notebook."""

from __future__ import annotations

from pathlib import Path

import pytest

from bf_jupyter.cli import build_parser, main
from bf_jupyter.server.backend import detect_backend, pod_namespace
from bf_jupyter.server.lab_command import EXAMPLE_NOTEBOOK, lab_argv


def test_unknown_options_reach_jupyterlab_in_order() -> None:
    parser = build_parser()
    args, unknown = parser.parse_known_args(
        ["lab", "--backend", "local", "--no-browser", "--port=9999"]
    )
    assert args.backend == "local"
    assert unknown == ["--no-browser", "--port=9999"]
    assert lab_argv(backend="local", notebook=None, passthrough=unknown, cwd=Path("/nowhere")) == [
        "--BitfusionExtension.backend=local", "--no-browser", "--port=9999",
    ]  # fmt: skip


def test_other_commands_still_refuse_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--bogus"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_a_bad_backend_is_refused_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["lab", "--backend", "cloud"])
    assert "choose from 'local', 'kubernetes'" in capsys.readouterr().err


def test_the_example_notebook_opens_first_when_it_is_there(tmp_path: Path) -> None:
    (tmp_path / EXAMPLE_NOTEBOOK).parent.mkdir(parents=True)
    (tmp_path / EXAMPLE_NOTEBOOK).write_text("{}")
    argv = lab_argv(backend=None, notebook=None, passthrough=[], cwd=tmp_path)
    assert argv == [f"--LabApp.default_url=/lab/tree/{EXAMPLE_NOTEBOOK.as_posix()}"]


def test_no_example_and_no_choice_opens_jupyterlab_as_usual(tmp_path: Path) -> None:
    assert lab_argv(backend=None, notebook=None, passthrough=[], cwd=tmp_path) == []


def test_a_users_own_default_url_wins(tmp_path: Path) -> None:
    notebook = tmp_path / "a.ipynb"
    notebook.write_text("{}")
    passthrough = ["--LabApp.default_url=/lab/tree/b.ipynb"]
    assert (
        lab_argv(backend=None, notebook=notebook, passthrough=passthrough, cwd=tmp_path)
        == passthrough
    )


def test_backend_is_kubernetes_only_in_a_pod_with_a_service_account(tmp_path: Path) -> None:
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert detect_backend(in_pod, service_account_dir=tmp_path) == "local"
    (tmp_path / "token").write_text("t")
    (tmp_path / "namespace").write_text("team-a\n")
    assert detect_backend(in_pod, service_account_dir=tmp_path) == "kubernetes"
    assert detect_backend({}, service_account_dir=tmp_path) == "local"
    assert pod_namespace(service_account_dir=tmp_path) == "team-a"
    assert pod_namespace(service_account_dir=tmp_path / "missing") is None
