"""The token service over real HTTPS, asking a fake API server: an admitted pod's fetch gets the
files; a pod the webhook did not inject, a token for another audience, a token of an earlier pod of
the same name, and no token at all get one line each and nothing of the token."""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import stat
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import trustme

from bf_jupyter.cli import main
from bf_jupyter.cluster.tokenservice import fetch
from bf_jupyter.cluster.webhook.mutate import mutate_pod
from tests.integration.tokenservice.conftest import (
    AUDIENCE,
    TOKEN_TEXT,
    FakeApiServer,
    IssuedToken,
    RunningTokenService,
)

Obj = dict[str, Any]


def _token(n: int) -> str:
    return f"eyJhbGciOiJSUzI1NiJ9.eyJwb2QiOiJ{n}In0.c2lnbmF0dXJl{n}"


def _admitted_pod(service: RunningTokenService, name: str, uid: str) -> Obj:
    pod: Obj = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-a",
                     "annotations": {"auto-management/bitfusion": "all"}},
        "spec": {"containers": [{
            "name": "train", "image": "tensorflow/tensorflow:2.16.1-gpu",
            "command": ["python", "train.py"],
            "resources": {"limits": {"bitfusion.io/gpu-amount": "1", "bitfusion.io/gpu-percent": "50"}},
        }]},
    }  # fmt: skip
    verdict = mutate_pod(pod, service.config)
    assert verdict.allowed, verdict.problems
    admitted: Obj = jsonpatch.apply_patch(pod, list(verdict.patch))
    admitted["metadata"]["uid"] = uid
    admitted["spec"]["serviceAccountName"] = "default"
    admitted["status"] = {"phase": "Pending"}
    return admitted


def _plain_pod(name: str, uid: str) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-a", "uid": uid},
        "spec": {"serviceAccountName": "default",
                 "containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": "Running"},
    }  # fmt: skip


def _ask(service: RunningTokenService, headers: dict[str, str]) -> tuple[int, Obj]:
    connection = http.client.HTTPSConnection(
        "localhost", service.port, context=service.client_context, timeout=10
    )
    try:
        connection.request("POST", "/v1/token", body=b"", headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.fixture
def scenario(fake_api: FakeApiServer, token_service: RunningTokenService) -> FakeApiServer:
    fake_api.tokens.clear()
    fake_api.pods.clear()
    fake_api.asked.clear()
    # an admitted pod and its projected token for the service's audience
    fake_api.pods["team-a", "train"] = _admitted_pod(token_service, "train", "uid-train")
    fake_api.tokens[_token(1)] = IssuedToken([AUDIENCE], "team-a", "default", "train", "uid-train")
    # the same pod's token for the API server's audience (the default service-account token)
    fake_api.tokens[_token(2)] = IssuedToken(
        ["https://kubernetes.default.svc"], "team-a", "default", "train", "uid-train"
    )
    # a pod nobody injected, with a token for the service's audience it projected itself
    fake_api.pods["team-a", "sneaky"] = _plain_pod("sneaky", "uid-sneaky")
    fake_api.tokens[_token(3)] = IssuedToken(
        [AUDIENCE], "team-a", "default", "sneaky", "uid-sneaky"
    )
    # a token of an earlier pod named train (deleted; a new train has another uid)
    fake_api.tokens[_token(4)] = IssuedToken([AUDIENCE], "team-a", "default", "train", "uid-old")
    return fake_api


def _written(out: Path) -> dict[str, bytes]:
    return {
        "ca.crt": (out / "tls" / "ca.crt").read_bytes(),
        "client.yaml": (out / "client.yaml").read_bytes(),
        "servers.conf": (out / "servers.conf").read_bytes(),
    }


def test_the_admitted_pods_fetch_gets_the_token_files(
    scenario: FakeApiServer, token_service: RunningTokenService, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # given the init container's own command, as the webhook writes it (but for the paths)
    account_token = tmp_path / "sa-token"
    account_token.write_text(_token(1))
    monkeypatch.setenv(fetch.CA_ENV, token_service.ca_pem)
    out = tmp_path / "token"
    code = main(["token-fetch", "--url", token_service.url, "--service-account-token",
                 str(account_token), "--out", str(out), "--attempts", "1"])  # fmt: skip
    # then the files are where the client looks, with the modes the Secret copy gives them
    assert code == 0
    assert _written(out) == TOKEN_TEXT
    modes = {
        p: stat.S_IMODE((out / p).stat().st_mode)
        for p in ("tls/ca.crt", "client.yaml", "servers.conf")
    }
    assert modes == {"tls/ca.crt": 0o644, "client.yaml": 0o644, "servers.conf": 0o666}
    # and the service asked exactly: the review with its audience, that pod, that one Secret
    assert scenario.asked == [
        f"tokenreview {AUDIENCE}",
        "pods team-a/train",
        "secrets bf-system/bitfusion-secret",
    ]


@pytest.mark.parametrize(
    ("token", "status", "words"),
    [
        (3, 403, "auto-management/status"),
        (2, 401, f"not valid for audience {AUDIENCE}"),
        (4, 403, "earlier pod"),
        (9, 401, "not valid for audience"),
    ],
    ids=["not-injected", "wrong-audience", "uid-mismatch", "unknown-token"],
)
def test_a_refused_caller_gets_one_line_and_the_secret_is_never_read(
    scenario: FakeApiServer, token_service: RunningTokenService, caplog: pytest.LogCaptureFixture,
    *, token: int, status: int, words: str,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    code, answer = _ask(token_service, {"Authorization": f"Bearer {_token(token)}"})
    assert code == status and list(answer) == ["error"]
    assert words in answer["error"] and "\n" not in answer["error"]
    assert not [a for a in scenario.asked if a.startswith("secrets")]
    for record in caplog.records:
        assert _token(token) not in record.getMessage()


def test_the_fetch_stops_the_pod_with_the_services_reason(
    scenario: FakeApiServer, token_service: RunningTokenService, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    account_token = tmp_path / "sa-token"
    account_token.write_text(_token(3))
    monkeypatch.setenv(fetch.CA_ENV, token_service.ca_pem)
    out = tmp_path / "token"
    code = main(["token-fetch", "--url", token_service.url, "--service-account-token",
                 str(account_token), "--out", str(out), "--attempts", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "the token service refused (403)" in err and _token(3) not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer opaque"}],
    ids=["none", "basic", "opaque"],
)
def test_no_service_account_token_is_401_without_asking_the_cluster(
    scenario: FakeApiServer, token_service: RunningTokenService, headers: dict[str, str]
) -> None:
    code, answer = _ask(token_service, headers)
    assert code == 401 and "Authorization: Bearer" in answer["error"]
    assert scenario.asked == []


def test_a_fetch_that_does_not_trust_the_service_sends_nothing(
    scenario: FakeApiServer, token_service: RunningTokenService, tmp_path: Path
) -> None:
    other = trustme.CA().cert_pem.bytes().decode()
    context = ssl.create_default_context(cadata=other)
    with pytest.raises(fetch.FetchError, match="unreachable"):
        fetch.fetch(token_service.url, _token(1), context, attempts=1)
    assert scenario.asked == []


def test_headers_past_the_bound_are_refused(
    scenario: FakeApiServer, token_service: RunningTokenService
) -> None:
    try:
        code, _ = _ask(token_service, {"Authorization": "Bearer " + "a" * (64 << 10)})
    except (http.client.HTTPException, ConnectionError, ssl.SSLError):
        code = 0  # tornado may close the connection instead of answering (mid-handshake: SSLEOF)
    assert code in (0, 400, 431)
    assert scenario.asked == []


def test_past_the_bound_on_requests_in_progress_it_answers_429(
    scenario: FakeApiServer, token_service: RunningTokenService
) -> None:
    bounds = token_service.server.bounds
    bounds.max_requests = 0
    try:
        code, answer = _ask(token_service, {"Authorization": f"Bearer {_token(1)}"})
    finally:
        bounds.max_requests = 32
    assert code == 429 and "busy" in answer["error"]
    assert bounds.requests == 0 and scenario.asked == []
