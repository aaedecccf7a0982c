"""`bf-jupyter kernelspec install`: installs or updates one kernelspec, validated, where Jupyter looks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from bf_jupyter.cli import main
from bf_jupyter.kernels.encryption import ipykernel_supports_curve
from bf_jupyter.kernels.kernelspecs import KernelspecRequest, kernelspec_source, render_kernel_json

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_shipped_kernelspecs_name_the_provisioners_with_a_default_slice() -> None:
    for directory, provisioner, display in (
        ("bitfusion-kubernetes", "bitfusion-kubernetes", "Python 3 (Bitfusion GPU, Kubernetes)"),
        ("bitfusion-local", "bitfusion-local", "Python 3 (Bitfusion GPU, local)"),
    ):
        spec = json.loads((REPO / "kernelspecs" / directory / "kernel.json").read_text())
        stanza = spec["metadata"]["kernel_provisioner"]
        assert spec["display_name"] == display
        assert stanza["provisioner_name"] == provisioner
        assert stanza["config"]["default_slice"] == "1x50%"
        assert spec["interrupt_mode"] == "message"
        assert {p.name for p in (REPO / "kernelspecs" / directory).iterdir()} >= {
            "logo-32x32.png",
            "logo-64x64.png",
            "logo-svg.svg",
        }


def test_user_install_honours_jupyter_data_dir(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "kernelspec",
            "install",
            "--backend",
            "kubernetes",
            "--user",
            "--slice",
            "2x8Gi",
            "--image",
            "reg/kernel:2",
            "--namespace",
            "notebooks",
        ]
    )
    assert code == 0
    spec = json.loads((data_dir / "kernels" / "bitfusion-kubernetes" / "kernel.json").read_text())
    config = spec["metadata"]["kernel_provisioner"]["config"]
    assert config == {"default_slice": "2x8Gi", "image": "reg/kernel:2", "namespace": "notebooks"}
    assert (data_dir / "kernels" / "bitfusion-kubernetes" / "logo-64x64.png").is_file()
    assert "Installed kernelspec bitfusion-kubernetes" in capsys.readouterr().out
    assert "bitfusion-kubernetes" in KernelSpecManager().find_kernel_specs()


def test_install_again_updates_in_place(data_dir: Path) -> None:
    assert (
        main(["kernelspec", "install", "--name", "gpu", "--display-name", "GPU", "--slice", "1"])
        == 0
    )
    assert (
        main(
            [
                "kernelspec",
                "install",
                "--name",
                "gpu",
                "--display-name",
                "GPU 2",
                "--slice",
                "1x25%",
            ]
        )
        == 0
    )
    spec = json.loads((data_dir / "kernels" / "gpu" / "kernel.json").read_text())
    assert spec["display_name"] == "GPU 2"
    assert spec["metadata"]["kernel_provisioner"]["config"]["default_slice"] == "1x25%"


def test_prefix_install_lands_under_share_jupyter(tmp_path: Path) -> None:
    assert main(["kernelspec", "install", "--prefix", str(tmp_path / "env")]) == 0
    assert (
        tmp_path / "env" / "share" / "jupyter" / "kernels" / "bitfusion-local" / "kernel.json"
    ).is_file()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--slice", "1x150%"], "--slice: gpu-percent 150 is out of range: use 1–100"),
        (["--name", "no spaces"], "--name 'no spaces' is not a kernel name"),
        (["--image", "reg/k:1"], "--image applies to --backend kubernetes only"),
        (
            ["--backend", "kubernetes", "--namespace", "Bad_NS"],
            "--namespace 'Bad_NS' is not a namespace name",
        ),
        (
            ["--backend", "kubernetes", "--gpu-backend", "cuda"],
            "--gpu-backend: backend 'cuda' is not known: use one of bitfusion, hami, nvidia",
        ),
        (
            ["--gpu-backend", "hami"],
            "--gpu-backend hami applies to --backend kubernetes only",
        ),
    ],
)
def test_bad_options_are_refused_with_one_sentence_and_nothing_written(
    data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert main(["kernelspec", "install", *argv]) == 2
    assert says in capsys.readouterr().err
    assert not (data_dir / "kernels").exists()


def test_rendering_keeps_the_template_when_nothing_is_asked() -> None:
    spec = render_kernel_json(KernelspecRequest(backend="local"))
    template = json.loads((kernelspec_source("local") / "kernel.json").read_text())
    if ipykernel_supports_curve():  # declared so that transport_encryption=auto encrypts it
        template["metadata"]["supported_encryption"] = ["curve"]
    assert spec == template


def test_a_local_kernelspec_declares_curve_only_when_ipykernel_serves_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bf_jupyter.kernels import kernelspecs

    monkeypatch.setattr(kernelspecs, "ipykernel_supports_curve", lambda: False)
    assert (
        "supported_encryption"
        not in render_kernel_json(KernelspecRequest(backend="local"))["metadata"]
    )
    monkeypatch.setattr(kernelspecs, "ipykernel_supports_curve", lambda: True)
    assert render_kernel_json(KernelspecRequest(backend="local"))["metadata"][
        "supported_encryption"
    ] == ["curve"]


def test_a_kubernetes_kernelspec_tied_to_hami_uses_the_neutral_provisioner(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When a platform engineer installs a kernelspec for the HAMi backend
    argv = ["kernelspec", "install", "--backend", "kubernetes", "--gpu-backend", "HAMi"]
    assert main([*argv, "--slice", "1x8Gi cores=30"]) == 0
    # Then it is named and titled for HAMi, and its provisioner renders every launch with HAMi
    spec = json.loads((data_dir / "kernels" / "gpu-kubernetes-hami" / "kernel.json").read_text())
    stanza = spec["metadata"]["kernel_provisioner"]
    assert stanza["provisioner_name"] == "gpu-kubernetes"
    assert stanza["config"]["gpu_backend"] == "hami"
    assert stanza["config"]["default_slice"] == "1x8Gi cores=30"
    assert spec["display_name"] == "Python 3 (GPU on HAMi, Kubernetes)"
    assert "gpu-kubernetes-hami" in capsys.readouterr().out


def test_bitfusion_as_gpu_backend_keeps_the_bitfusion_kernelspec() -> None:
    spec = render_kernel_json(KernelspecRequest(backend="kubernetes", gpu_backend="bitfusion"))
    stanza = spec["metadata"]["kernel_provisioner"]
    assert stanza["provisioner_name"] == "bitfusion-kubernetes"
    assert stanza["config"]["gpu_backend"] == "bitfusion"
    assert KernelspecRequest(backend="kubernetes", gpu_backend="bitfusion").kernel_name == (
        "bitfusion-kubernetes"
    )


def test_both_provisioner_names_load_the_same_class() -> None:
    from importlib.metadata import entry_points

    found = {
        e.name: e.load()
        for e in entry_points(group="jupyter_client.kernel_provisioners")
        if e.name in ("bitfusion-kubernetes", "gpu-kubernetes")
    }
    assert found["gpu-kubernetes"] is found["bitfusion-kubernetes"]
