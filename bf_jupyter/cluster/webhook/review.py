"""The AdmissionReview wire format (``admission.k8s.io/v1``): reading a request, writing a reply.

Kept apart from the rules so that ``mutate`` and ``validate`` see only a pod and return a ``Verdict``,
and so that whatever arrives (broken JSON, another kind, missing fields) gets a well-formed reply.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "ADMISSION_API_VERSION",
    "AdmissionRequest",
    "MalformedReview",
    "Verdict",
    "parse_review",
    "render_reply",
]

ADMISSION_API_VERSION = "admission.k8s.io/v1"
_POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
# The API server shows at most a few warnings of bounded length; keep each one readable.
_WARNING_LIMIT = 240


@dataclass(frozen=True)
class Verdict:
    """What a rule decided about one object.

    ``problems`` (all of them, for a denial) and ``warnings`` are sentences for the user; ``patch``
    holds JSONPatch operations (empty: no change); ``skipped`` names cluster checks that could not
    run (for the metrics).
    """

    allowed: bool
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    patch: tuple[Mapping[str, Any], ...] = ()
    code: int = 200
    skipped: tuple[str, ...] = ()

    @classmethod
    def allow(
        cls,
        *,
        patch: tuple[Mapping[str, Any], ...] = (),
        warnings: tuple[str, ...] = (),
        skipped: tuple[str, ...] = (),
    ) -> Verdict:
        return cls(True, (), warnings, patch, 200, skipped)

    @classmethod
    def deny(
        cls,
        problems: list[str] | tuple[str, ...],
        *,
        code: int = 403,
        warnings: tuple[str, ...] = (),
        skipped: tuple[str, ...] = (),
    ) -> Verdict:
        unique = tuple(dict.fromkeys(problems))  # the same sentence twice helps nobody
        return cls(False, unique, warnings, (), code, skipped)

    def message(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        return " ".join(f"({n}) {text}" for n, text in enumerate(self.problems, 1))


class MalformedReview(ValueError):
    """The body is not an AdmissionReview request; ``uid`` is echoed when it could be read."""

    def __init__(self, message: str, uid: str = "") -> None:
        super().__init__(message)
        self.uid = uid


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of ``AdmissionReview.request`` the webhook uses."""

    uid: str
    operation: str
    namespace: str
    name: str
    object: Any
    kind: Mapping[str, Any] = field(default_factory=dict)
    sub_resource: str = ""

    @property
    def is_ephemeral_update(self) -> bool:
        """An UPDATE of ``pods/ephemeralcontainers`` (``kubectl debug``) carrying the whole Pod."""
        return (
            self.operation == "UPDATE"
            and self.sub_resource == "ephemeralcontainers"
            and _POD_KIND.items() <= self.kind.items()
            and isinstance(self.object, dict)
        )

    @property
    def is_pod_creation(self) -> bool:
        """A CREATE of a Pod (not a subresource) whose object is a mapping: the only thing judged."""
        return (
            self.operation == "CREATE"
            and not self.sub_resource
            and _POD_KIND.items() <= self.kind.items()
            and isinstance(self.object, dict)
        )


def parse_review(body: bytes | str) -> AdmissionRequest:
    """Read an ``admission.k8s.io/v1`` AdmissionReview. Raises ``MalformedReview`` saying what is wrong."""
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # orjson refuses integers beyond 64 bits, which JSON allows
            review = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise MalformedReview(f"body is not JSON ({type(error).__name__})") from None
    if not isinstance(review, dict):
        raise MalformedReview("body is not a JSON object: send an AdmissionReview")
    request = review.get("request")
    uid = request.get("uid") if isinstance(request, dict) else None
    uid_text = uid if isinstance(uid, str) else ""
    if review.get("apiVersion") != ADMISSION_API_VERSION or review.get("kind") != "AdmissionReview":
        raise MalformedReview(
            f"apiVersion {review.get('apiVersion')!r} kind {review.get('kind')!r} is not accepted: "
            f"send kind AdmissionReview, apiVersion {ADMISSION_API_VERSION}",
            uid_text,
        )
    if not isinstance(request, dict):
        raise MalformedReview("AdmissionReview has no request", uid_text)
    if not uid_text:
        raise MalformedReview("AdmissionReview request has no uid")
    kind = request.get("kind")
    return AdmissionRequest(
        uid=uid_text,
        operation=_text(request.get("operation")),
        namespace=_text(request.get("namespace")),
        name=_text(request.get("name")),
        object=request.get("object"),
        kind=kind if isinstance(kind, dict) else {},
        sub_resource=_text(request.get("subResource")),
    )


def render_reply(uid: str, verdict: Verdict) -> bytes:
    """The AdmissionReview reply for ``verdict``, echoing ``uid``; the patch base64-encoded JSON."""
    response: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        response["status"] = {"code": verdict.code, "message": verdict.message()}
    if verdict.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(_dumps(verdict.patch)).decode("ascii")
    if verdict.warnings:
        response["warnings"] = [_clip(text) for text in dict.fromkeys(verdict.warnings)]
    reply = {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "response": response}
    return _dumps(reply)


def _dumps(value: object) -> bytes:
    """Compact JSON; orjson is ~10x faster than ``json`` on the hot path, ``json`` takes what it
    refuses (integers beyond 64 bits copied from a pod's fields)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _clip(text: str) -> str:
    return text if len(text) <= _WARNING_LIMIT else text[: _WARNING_LIMIT - 1] + "…"
