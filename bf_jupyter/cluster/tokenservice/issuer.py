"""One token request in, one answer out: authenticate the caller, judge its pod, hand out the files.

``TokenIssuer`` joins the pure rules (``decision``) to the cluster (a ``TokenAuthority``: the API
server's TokenReview, the pod, and the token Secret in bf-system). Calls block; the server runs them
off its event loop. Logs name the pod and the reason, never a token (neither the caller's nor the
Bitfusion one).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bf_jupyter.cluster.tokenservice.decision import (
    Refusal,
    bearer_token,
    caller_from_review,
    check_pod,
)
from bf_jupyter.cluster.webhook.injection import TOKEN_FILES

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.config import WebhookConfig

__all__ = ["Answer", "AuthorityUnavailable", "TokenAuthority", "TokenIssuer", "refusal_body"]

log = logging.getLogger("bf_jupyter.tokenservice")


class AuthorityUnavailable(RuntimeError):
    """The Kubernetes API could not answer (unreachable, refused); the message says why."""


class TokenAuthority(Protocol):
    """What the issuer asks the cluster. Each method may raise ``AuthorityUnavailable``."""

    def review(self, token: str, audience: str) -> Mapping[str, Any]:
        """The TokenReview of ``token`` for ``audience`` (the API object, ``status`` filled in)."""
        ...

    def pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The pod, or None when it does not exist."""
        ...

    def token_files(self) -> Mapping[str, str] | None:
        """The token Secret's ``data`` (base64 values), or None when it does not exist."""
        ...


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and JSON body; ``outcome`` (issued, refused, unavailable) for logs."""

    status: int
    body: bytes
    outcome: str


class TokenIssuer:
    """Answers ``POST /v1/token``. Holds only frozen configuration and the authority."""

    def __init__(self, config: WebhookConfig, authority: TokenAuthority) -> None:
        if not config.token_audience:
            raise ValueError("the token service needs tokenService.audience in its configuration")
        self.config = config
        self.audience = config.token_audience
        self.authority = authority

    def issue(self, authorization: str | None) -> Answer:
        """The token files for an entitled caller, or a one-line refusal. Never raises."""
        try:
            files, caller = self._issue(authorization)
        except Refusal as refusal:
            log.info("refused (%d): %s", refusal.status, refusal.reason)
            outcome = "unavailable" if refusal.status >= 500 else "refused"
            return Answer(refusal.status, refusal_body(refusal.reason), outcome)
        except Exception:
            log.exception("token request failed (an internal error)")
            return Answer(
                500, refusal_body("the token service failed (an internal error, logged)"), "error"
            )
        log.info("token files handed to %s", caller)
        return Answer(200, json.dumps({"files": files}).encode(), "issued")

    def _issue(self, authorization: str | None) -> tuple[dict[str, str], object]:
        token = bearer_token(authorization, self.audience)
        try:
            review = self.authority.review(token, self.audience)
            caller = caller_from_review(review, self.audience)
            check_pod(self.authority.pod(caller.namespace, caller.pod_name), caller, self.config)
            data = self.authority.token_files()
        except AuthorityUnavailable as error:
            raise Refusal(
                503, f"the token service cannot ask the Kubernetes API ({error}): retry"
            ) from None
        secret = self.config.token_secret
        if data is None:
            raise Refusal(
                503,
                f"the token Secret {secret} is missing in the token service's namespace: ask the administrators",
            )
        missing = [name for name in TOKEN_FILES if not isinstance(data.get(name), str)]
        if missing:
            raise Refusal(
                503, f"the token Secret {secret} lacks {', '.join(missing)}: ask the administrators"
            )
        return {name: data[name] for name in TOKEN_FILES}, caller


def refusal_body(reason: str) -> bytes:
    return json.dumps({"error": reason}).encode()
