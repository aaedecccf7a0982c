"""The admission POSTs are answered at tornado's HTTP layer (``routes.AdmissionRoutes``): what the API
server sends reaches them, everything else still reaches the tornado application, and HTTP framing
stays right on a keep-alive connection."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import jsonpatch

from .conftest import RunningWebhook, admission_review, gpu, pod_with

MANAGED = {"auto-management/bitfusion": "all"}


def connect(webhook: RunningWebhook) -> http.client.HTTPSConnection:
    client = webhook.new_client()
    return http.client.HTTPSConnection("localhost", client.port, context=client.context, timeout=10)


def test_the_query_string_the_api_server_adds_is_ignored(webhook: RunningWebhook) -> None:
    # given a review posted the way kube-apiserver calls a webhook: with ?timeout=
    body = admission_review(pod_with(gpu(), **MANAGED))
    # when it is posted to /mutate?timeout=5s
    status, reply = webhook.client.review("/mutate?timeout=5s", body)
    # then it is mutated
    assert status == 200 and reply["response"]["allowed"] is True
    assert json.loads(base64.b64decode(reply["response"]["patch"]))


def test_replies_are_framed_for_keep_alive_with_length_type_and_date(
    webhook: RunningWebhook,
) -> None:
    connection = connect(webhook)
    try:
        for uid in ("a", "b"):  # two exchanges on one connection
            body = admission_review(pod_with(gpu(), **MANAGED), uid=uid)
            connection.request("POST", "/mutate", body=body)
            response = connection.getresponse()
            raw = response.read()
            assert response.status == 200 and json.loads(raw)["response"]["uid"] == uid
            assert response.getheader("Content-Length") == str(len(raw))
            assert response.getheader("Content-Type") == "application/json"
            assert response.getheader("Date", "").endswith(" GMT")
            assert response.getheader("Transfer-Encoding") is None
    finally:
        connection.close()


def test_a_chunked_body_is_read_whole(webhook: RunningWebhook) -> None:
    body = admission_review(pod_with(gpu(), **MANAGED), uid="chunked")

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    connection = connect(webhook)
    try:
        connection.request("POST", "/validate", body=pieces(), encode_chunked=True)
        response = connection.getresponse()
        reply = json.loads(response.read())
    finally:
        connection.close()
    # the unconverted pod is refused by validation: the whole review arrived
    assert response.status == 200 and reply["response"]["uid"] == "chunked"
    assert "did not process the pod" in reply["response"]["status"]["message"]


def test_other_methods_on_admission_paths_get_a_405_admission_review(
    webhook: RunningWebhook,
) -> None:
    for method, path in (("GET", "/mutate"), ("PUT", "/validate"), ("DELETE", "/mutate")):
        status, raw = webhook.client.request(method, path, b"{}" if method == "PUT" else None)
        reply: dict[str, Any] = json.loads(raw)
        assert status == 405 and reply["kind"] == "AdmissionReview"
        assert reply["response"]["allowed"] is False


def test_other_paths_still_reach_the_application(webhook: RunningWebhook) -> None:
    assert webhook.client.request("POST", "/mutate/extra", b"{}")[0] == 404
    assert webhook.client.request("POST", "/healthz", b"{}")[0] == 405
    assert webhook.client.request("GET", "/healthz") == (200, b"ok\n")


def test_a_body_over_the_limit_is_refused_before_it_is_read(webhook: RunningWebhook) -> None:
    connection = connect(webhook)
    try:
        connection.putrequest("POST", "/mutate")
        connection.putheader("Content-Length", str(64 << 20))
        connection.endheaders()
        assert connection.getresponse().status == 400
    finally:
        connection.close()


def test_a_validation_whose_client_left_is_dropped_and_the_server_goes_on(
    webhook: RunningWebhook,
) -> None:
    # given a validation of a mutated pod, held by a slow cluster API
    pod = pod_with(gpu(), **MANAGED)
    response = webhook.client.review("/mutate", admission_review(pod))[1]["response"]
    patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
    gate = threading.Event()
    webhook.facts.gate, webhook.facts.waiting = gate, threading.Event()
    connection = connect(webhook)
    try:
        body = admission_review(patched, uid="left")
        connection.request("POST", "/validate", body=body)
        assert webhook.facts.waiting.wait(10)
        # when the client hangs up before the answer, and the API answers afterwards
        connection.close()
        gate.set()
    finally:
        gate.set()
        webhook.facts.gate = None
    # then the server keeps answering
    status, reply = webhook.new_client().review("/mutate", admission_review(pod_with(gpu())))
    assert status == 200 and reply["response"]["allowed"] is True
