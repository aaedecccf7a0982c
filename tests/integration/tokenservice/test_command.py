"""``bf-jupyter token-service`` and ``token-fetch`` as an administrator meets them: a help text that
says what is checked and what each answer means, and one clear line for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bf_jupyter.cli import main


def test_the_help_explains_what_is_checked_and_each_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["token-service", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("TokenReview", "projected service-account token", "auto-management/status: injected",
                  "401", "403", "429", "503", "no token is ever logged", "tokenreviews",
                  "--max-requests", "--config"):  # fmt: skip
        assert words in text, words


def test_a_bad_configuration_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("tokenSource: vault\n")
    result = subprocess.run(
        [sys.executable, "-m", "bf_jupyter", "token-service", "--tls-cert", "x", "--tls-key", "y",
         "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "tokenSource vault is not a token source: use secret, service" in result.stderr


def test_the_fetch_without_a_ca_or_token_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BF_JUPYTER_TOKEN_SERVICE_CA", raising=False)
    argv = ["token-fetch", "--url", "https://localhost:1", "--service-account-token",
            str(tmp_path / "absent"), "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 1
    assert "no CA for the token service" in capsys.readouterr().err
    monkeypatch.setenv("BF_JUPYTER_TOKEN_SERVICE_CA", "not pem")
    assert main(argv) == 1
    assert "CA is unusable" in capsys.readouterr().err
