"""The AdmissionReview wire format: what is read from a request and what a reply carries."""

from __future__ import annotations

import base64
import json

import pytest

from bf_jupyter.cluster.webhook.review import MalformedReview, Verdict, parse_review, render_reply

POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}


def review(**request: object) -> bytes:
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(body).encode()


def test_a_pod_creation_is_read_with_its_uid_and_namespace() -> None:
    request = parse_review(
        review(uid="u1", kind=POD_KIND, operation="CREATE", namespace="team-a", object={"spec": {}})
    )
    assert (request.uid, request.namespace, request.is_pod_creation) == ("u1", "team-a", True)


@pytest.mark.parametrize(
    "changes",
    [
        {"operation": "UPDATE"},
        {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}},
        {"subResource": "status"},
        {"object": None},
    ],
)
def test_anything_but_a_pod_creation_is_not_judged(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {"uid": "u", "kind": POD_KIND, "operation": "CREATE", "object": {}}
    assert not parse_review(review(**{**fields, **changes})).is_pod_creation


@pytest.mark.parametrize(
    ("body", "message", "uid"),
    [
        (b"{not json", "body is not JSON", ""),
        (b"\xff\xfe", "body is not JSON", ""),
        (b"[1, 2]", "not a JSON object", ""),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1beta1",
                    "kind": "AdmissionReview",
                    "request": {"uid": "x"},
                }
            ).encode(),
            "is not accepted",
            "x",
        ),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
            "has no request",
            "",
        ),
        (review(kind=POD_KIND), "has no uid", ""),
        (b"[" * 100000, "body is not JSON", ""),
    ],
)
def test_a_malformed_review_is_refused_saying_why(body: bytes, message: str, uid: str) -> None:
    with pytest.raises(MalformedReview) as caught:
        parse_review(body)
    assert message in str(caught.value) and caught.value.uid == uid


def test_a_reply_echoes_the_uid_and_carries_the_patch_as_base64_json() -> None:
    patch = ({"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},)
    reply = json.loads(render_reply("u-7", Verdict.allow(patch=patch, warnings=("w",))))
    assert reply["apiVersion"] == "admission.k8s.io/v1" and reply["kind"] == "AdmissionReview"
    response = reply["response"]
    assert response["uid"] == "u-7" and response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == list(patch)
    assert response["warnings"] == ["w"]


def test_a_denial_numbers_its_problems_in_one_status_message() -> None:
    reply = json.loads(render_reply("u", Verdict.deny(["first", "second", "first"])))
    assert reply["response"]["allowed"] is False
    assert reply["response"]["status"] == {"code": 403, "message": "(1) first (2) second"}
    assert "patch" not in reply["response"]
