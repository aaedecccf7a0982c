"""Who is asking, and may they have the token: pure rules over the request's credential, the API
server's TokenReview of it, and the pod the review names.

A caller presents the projected service-account token of its pod (``Authorization: Bearer``). The
API server's TokenReview, asked with the service's audience, says whether the token is valid for
that audience and which pod it is bound to (``authentication.kubernetes.io/pod-name`` and
``pod-uid`` in the user's extra). The pod then has to be that very pod (same uid, namespace and
service account), still running its start, and entitled by the webhooks' own rule
(``entitlement.pod_token_problems``: one owner). Every refusal is one line and never carries the
token: 401 when the caller is not authenticated, 403 when it is but its pod is not entitled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bf_jupyter.cluster.webhook.entitlement import pod_token_problems
from bf_jupyter.cluster.webhook.podspec import PodShapeError

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.config import WebhookConfig

__all__ = [
    "POD_NAME_EXTRA",
    "POD_UID_EXTRA",
    "Caller",
    "Refusal",
    "bearer_token",
    "caller_from_review",
    "check_pod",
]

POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
_ACCOUNT_PREFIX = "system:serviceaccount:"
# A JWT: three base64url parts. Projected tokens are 1–2 KiB; anything else is refused unread.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
MAX_TOKEN_CHARS = 8192


class Refusal(Exception):
    """The caller gets nothing: ``status`` (401, 403, 503) and one line saying why (no token text)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """The pod a valid token is bound to, as the API server's TokenReview names it."""

    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str

    def __str__(self) -> str:
        return f"pod {self.namespace}/{self.pod_name} (uid {self.pod_uid})"


def bearer_token(authorization: str | None, audience: str) -> str:
    """The token of an ``Authorization: Bearer`` header. Raises ``Refusal`` (401)."""
    ask = (
        f"present the pod's projected service-account token for audience {audience} as "
        "Authorization: Bearer"
    )
    if not authorization:
        raise Refusal(401, f"no credentials: {ask}")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refusal(401, f"the Authorization header is not a bearer token: {ask}")
    if len(token) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
        raise Refusal(401, f"the bearer token is not a service-account token: {ask}")
    return token


def caller_from_review(review: Mapping[str, Any], audience: str) -> Caller:
    """The pod a TokenReview (asked with ``audience``) authenticated. Raises ``Refusal`` (401) when
    the token is invalid, for another audience, not a service account's, or bound to no pod."""
    status = review.get("status")
    status = status if isinstance(status, Mapping) else {}
    if status.get("authenticated") is not True:
        raise Refusal(
            401,
            f"the service-account token is not valid for audience {audience} (expired, for "
            "another audience, or its pod is gone): mount a projected token with that audience",
        )
    audiences = status.get("audiences")
    if not isinstance(audiences, list) or audience not in audiences:
        raise Refusal(
            401, f"the service-account token is not for audience {audience}: use a token for it"
        )
    user = status.get("user")
    user = user if isinstance(user, Mapping) else {}
    username = user.get("username")
    if not isinstance(username, str) or not username.startswith(_ACCOUNT_PREFIX):
        raise Refusal(401, "the token is not a service account's: present the pod's own token")
    namespace, _, account = username[len(_ACCOUNT_PREFIX) :].partition(":")
    extra = user.get("extra")
    extra = extra if isinstance(extra, Mapping) else {}
    name, uid = _single(extra.get(POD_NAME_EXTRA)), _single(extra.get(POD_UID_EXTRA))
    if not namespace or not account or name is None or uid is None:
        raise Refusal(
            401,
            "the service-account token is bound to no pod: present the projected token of the "
            "pod's own volume (a token made without --bound-object-kind Pod is not)",
        )
    return Caller(namespace, account, name, uid)


def check_pod(pod: Mapping[str, Any] | None, caller: Caller, config: WebhookConfig) -> None:
    """Raise ``Refusal`` (403) unless ``pod`` is the caller's pod and may have the token."""
    if pod is None:
        raise Refusal(403, f"{caller} does not exist (any more): nothing to hand out")
    metadata = pod.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    if metadata.get("uid") != caller.pod_uid:
        raise Refusal(
            403,
            f"{caller}: the pod of that name now has another uid; the token belongs to an "
            "earlier pod",
        )
    if metadata.get("namespace") != caller.namespace:
        raise Refusal(403, f"{caller}: the pod read is in another namespace")
    spec = pod.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    account = spec.get("serviceAccountName") or "default"
    if account != caller.service_account:
        raise Refusal(
            403,
            f"{caller} runs as service account {account}, the token is {caller.service_account}'s",
        )
    phase = (pod.get("status") or {}).get("phase") if isinstance(pod.get("status"), Mapping) else ""
    if metadata.get("deletionTimestamp") or phase in ("Succeeded", "Failed"):
        raise Refusal(403, f"{caller} is ending: nothing to hand out")
    try:
        problems = pod_token_problems(pod, config)
    except PodShapeError as error:
        raise Refusal(403, f"{caller} is malformed: {error}") from None
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise Refusal(403, f"{caller} is not entitled to the Bitfusion token: {problems[0]}{more}")


def _single(value: object) -> str | None:
    """The one non-empty string of an extra's value (a list of strings), or None."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str) and value[0]:
        return value[0]
    return None
