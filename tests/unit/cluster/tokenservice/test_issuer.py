"""The issuer joins the rules to the cluster: files for an entitled pod, one line otherwise, never a
token in an answer or a log."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from bf_jupyter.cluster.tokenservice.issuer import AuthorityUnavailable, TokenIssuer
from tests.unit.cluster.tokenservice.conftest import review

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.config import WebhookConfig

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
SECRET_TEXT = "bitfusion-token-text"
FILES = {
    name: base64.b64encode(f"{SECRET_TEXT} {name}".encode()).decode()
    for name in ("ca.crt", "client.yaml", "servers.conf")
}


@dataclass
class MemoryAuthority:
    pods: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    answer: dict[str, Any] = field(default_factory=review)
    files: dict[str, str] | None = field(default_factory=lambda: dict(FILES))
    unavailable: str | None = None
    asked: list[str] = field(default_factory=list)

    def _ask(self, what: str) -> None:
        self.asked.append(what)
        if self.unavailable:
            raise AuthorityUnavailable(self.unavailable)

    def review(self, token: str, audience: str) -> Mapping[str, Any]:
        self._ask(f"review {audience}")
        return self.answer

    def pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        self._ask(f"pod {namespace}/{name}")
        return self.pods.get((namespace, name))

    def token_files(self) -> Mapping[str, str] | None:
        self._ask("secret")
        return self.files


@pytest.fixture
def authority(admitted: Callable[..., dict[str, Any]]) -> MemoryAuthority:
    return MemoryAuthority(pods={("team-a", "train"): admitted()})


def test_an_entitled_pod_gets_the_three_files(
    authority: MemoryAuthority, config: WebhookConfig
) -> None:
    answer = TokenIssuer(config, authority).issue(f"Bearer {TOKEN}")
    assert answer.status == 200 and answer.outcome == "issued"
    assert json.loads(answer.body) == {"files": FILES}
    assert authority.asked == ["review bf-jupyter-token-service", "pod team-a/train", "secret"]


def test_a_refused_pod_never_reaches_the_secret(
    authority: MemoryAuthority, config: WebhookConfig
) -> None:
    authority.pods.clear()
    answer = TokenIssuer(config, authority).issue(f"Bearer {TOKEN}")
    assert answer.status == 403 and "secret" not in authority.asked
    assert list(json.loads(answer.body)) == ["error"]


def test_no_header_is_401_without_asking_the_cluster(
    authority: MemoryAuthority, config: WebhookConfig
) -> None:
    answer = TokenIssuer(config, authority).issue(None)
    assert answer.status == 401 and authority.asked == []


def test_an_unreachable_api_is_503(authority: MemoryAuthority, config: WebhookConfig) -> None:
    authority.unavailable = "connection refused"
    answer = TokenIssuer(config, authority).issue(f"Bearer {TOKEN}")
    assert answer.status == 503 and "retry" in json.loads(answer.body)["error"]


@pytest.mark.parametrize("files", [None, {"ca.crt": FILES["ca.crt"]}], ids=["missing", "partial"])
def test_an_incomplete_token_secret_is_503_naming_it(
    authority: MemoryAuthority, config: WebhookConfig, files: dict[str, str] | None
) -> None:
    authority.files = files
    answer = TokenIssuer(config, authority).issue(f"Bearer {TOKEN}")
    assert answer.status == 503 and "bitfusion-secret" in json.loads(answer.body)["error"]


def test_neither_token_reaches_a_log_or_a_refusal(
    authority: MemoryAuthority, config: WebhookConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issuer = TokenIssuer(config, authority)
    answers = [issuer.issue(f"Bearer {TOKEN}")]
    authority.answer = review(authenticated=False)
    answers.append(issuer.issue(f"Bearer {TOKEN}"))
    answers.append(issuer.issue(f"Bearer {TOKEN}x.y"))
    assert [a.status for a in answers] == [200, 401, 401]
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and SECRET_TEXT not in record.getMessage()
    for answer in answers[1:]:
        assert TOKEN.encode() not in answer.body
