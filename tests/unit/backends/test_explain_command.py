"""``bf-jupyter slice explain``: what a slice becomes, or a one-line refusal with exit 2."""

from __future__ import annotations

import json

import pytest

from bf_jupyter.cli import main


def test_explain_prints_pod_fields_quota_and_isolation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slice", "explain", "1x8Gi", "cores=30", "--backend", "hami"]) == 0
    out = capsys.readouterr().out
    assert "nvidia.com/gpumem: 8192" in out
    assert "nvidia.com/gpucores: 30" in out
    assert "spec.schedulerName: hami-scheduler" in out
    assert "against limits.nvidia.com/gpumem" in out
    assert "isolation: memory and cores limited in the container" in out


def test_explain_json_is_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slice", "explain", "1x10Gi", "--backend", "nvidia", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pod"]["limits"] == {"nvidia.com/mig-1g.10gb": "1"}
    assert report["quota"][0]["quota_keys"] == ["requests.nvidia.com/mig-1g.10gb"]
    assert report["isolation"]["label"] == "hardware partition"


def test_explain_defaults_to_bitfusion_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slice", "explain", "2x8Gi", "--per-gpu-memory", "16Gi", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pod"]["limits"] == {
        "bitfusion.io/gpu-amount": "2",
        "bitfusion.io/gpu-memory": "8Gi",
    }
    assert report["quota"][0]["amount"] == 100


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["1x50%", "--backend", "nvidia-time-slicing"],
            "bf-jupyter slice explain: gpu-percent 50% cannot be honoured by NVIDIA time-slicing: "
            "ask for a memory share such as 1x8Gi, a MIG profile such as mig-1g.10gb or one "
            "shared replica, 1xshared",
        ),
        (["1x150%"], "bf-jupyter slice explain: gpu-percent 150 is out of range: use 1–100"),
        (["1", "--per-gpu-memory", "lots"], "bf-jupyter slice explain: --per-gpu-memory lots"),
    ],
)
def test_refusal_is_exit_2_and_one_line(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["slice", "explain", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(line)


def test_help_explains_forms_backends_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["slice", "explain", "--help"])
    out = capsys.readouterr().out
    assert "1x8Gi cores=30" in out and "nvidia-time-slicing" in out and "exit status" in out


def test_explain_dra_prints_the_claim_template(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["slice", "explain", "2", "--backend", "dra", "--device-class", "a100.example"]) == 0
    )
    out = capsys.readouterr().out
    assert "object ResourceClaimTemplate (created with the pod, owned by it):" in out
    assert '"deviceClassName": "a100.example"' in out
    assert "spec.resourceClaims:" in out
    assert "against a100.example.deviceclass.resource.k8s.io/devices" in out
    assert "counts devices, not memory" in out
