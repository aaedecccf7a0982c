"""One admission request in, one AdmissionReview reply out, whatever arrived.

``AdmissionService`` joins the wire format (``review``) to the rules (``mutate``, ``validate``). It
holds only frozen configuration and the cluster-facts reader, so concurrent requests share nothing
they can change; the server updates its metrics from the returned ``Reply`` on its own thread.
Logs name the pod and the reasons, never its spec (env values may hold secrets).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bf_jupyter.cluster.webhook.mutate import mutate_pod
from bf_jupyter.cluster.webhook.review import (
    AdmissionRequest,
    MalformedReview,
    Verdict,
    parse_review,
    render_reply,
)
from bf_jupyter.cluster.webhook.validate import validate_ephemeral, validate_pod

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.config import WebhookConfig
    from bf_jupyter.cluster.webhook.validate import ClusterFacts

__all__ = ["AdmissionService", "Reply"]

log = logging.getLogger("bf_jupyter.webhook")

_INTERNAL_ERROR = (
    "the Bitfusion webhook failed on this pod (an internal error, logged with request uid {uid}); "
    "report it to the cluster administrators"
)


@dataclass(frozen=True)
class Reply:
    """An HTTP reply: status, JSON body, and what happened (for metrics): ``outcome`` is one of
    allowed, patched, denied, malformed, error; ``skipped`` names cluster checks that did not run."""

    status: int
    body: bytes
    outcome: str
    skipped: tuple[str, ...] = ()


class AdmissionService:
    """The mutate and validate endpoints as plain functions of the request body."""

    def __init__(self, config: WebhookConfig, facts: ClusterFacts) -> None:
        self.config = config
        self.facts = facts

    def mutate(self, body: bytes) -> Reply:
        """Answer ``POST /mutate``. Never raises."""
        return self._answer(body, "mutate")

    def validate(self, body: bytes) -> Reply:
        """Answer ``POST /validate``. Never raises; may block on the cluster API."""
        return self._answer(body, "validate")

    def _answer(self, body: bytes, endpoint: str) -> Reply:
        try:
            request = parse_review(body)
        except MalformedReview as error:
            verdict = Verdict.deny([f"malformed AdmissionReview: {error}"], code=400)
            return Reply(400, render_reply(error.uid, verdict), "malformed")
        try:
            verdict = self._judge(request, endpoint)
        except Exception:
            log.exception(
                "%s failed on pod %s/%s (uid %s)",
                endpoint,
                request.namespace,
                request.name,
                request.uid,
            )
            verdict = Verdict.deny([_INTERNAL_ERROR.format(uid=request.uid)], code=500)
            return Reply(200, render_reply(request.uid, verdict), "error")
        if not verdict.allowed:
            log.info(
                "%s denied pod %s/%s (uid %s): %s",
                endpoint,
                request.namespace,
                _pod_name(request),
                request.uid,
                verdict.message(),
            )
        outcome = "denied" if not verdict.allowed else "patched" if verdict.patch else "allowed"
        return Reply(200, render_reply(request.uid, verdict), outcome, verdict.skipped)

    def _judge(self, request: AdmissionRequest, endpoint: str) -> Verdict:
        if endpoint == "validate" and request.is_ephemeral_update:
            return validate_ephemeral(request.object, self.config)
        if not request.is_pod_creation:
            return Verdict.allow()  # the webhook configurations send only these two requests
        if endpoint == "mutate":
            return mutate_pod(request.object, self.config)
        return validate_pod(request.object, request.namespace, self.config, self.facts)


def _pod_name(request: AdmissionRequest) -> str:
    """The pod's name for logs; at creation it may exist only as a ``generateName`` prefix."""
    metadata = request.object.get("metadata") if isinstance(request.object, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    for name in (request.name, metadata.get("name")):
        if isinstance(name, str) and name:
            return name
    prefix = metadata.get("generateName")
    return f"{prefix}<generated>" if isinstance(prefix, str) else "<unnamed>"
