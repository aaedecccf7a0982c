"""The admission routes at the HTTP layer, driven through tornado's delegate interface with a
connection that records what would go on the wire: even when the service fails or the server is
stopping, the API server gets an AdmissionReview."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tornado import httputil
from tornado.concurrent import Future

from bf_jupyter.cluster.webhook.cluster_view import NoClusterFacts
from bf_jupyter.cluster.webhook.config import WebhookConfig
from bf_jupyter.cluster.webhook.metrics import Metrics
from bf_jupyter.cluster.webhook.routes import AdmissionRoutes
from bf_jupyter.cluster.webhook.service import AdmissionService, Reply


class RecordingConnection(httputil.HTTPConnection):
    """Keeps the reply instead of sending it."""

    def __init__(self) -> None:
        self.status = 0
        self.headers = httputil.HTTPHeaders()
        self.body = b""
        self.finished = False

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> Future[None]:
        assert isinstance(start_line, httputil.ResponseStartLine)
        self.status, self.headers, self.body = start_line.code, headers, chunk or b""
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def finish(self) -> None:
        self.finished = True

    def review(self) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(self.body)
        return reply


class BrokenService(AdmissionService):
    """A service with a bug: every answer raises."""

    def mutate(self, body: bytes) -> Reply:
        raise KeyError("a bug")


class BlockingFacts(NoClusterFacts):
    blocking = True


def post(routes: AdmissionRoutes, path: str, body: bytes) -> RecordingConnection:
    """Deliver one request on an event loop, as tornado's HTTP1Connection would."""
    connection = RecordingConnection()

    async def deliver() -> None:
        exchange = routes.start_request(object(), connection)
        start_line = httputil.RequestStartLine("POST", path, "HTTP/1.1")
        exchange.headers_received(start_line, httputil.HTTPHeaders())
        exchange.data_received(body)
        exchange.finish()

    asyncio.run(deliver())
    return connection


def test_a_service_that_raises_still_answers_with_an_admission_review() -> None:
    # given a service with a bug behind the routes
    metrics = Metrics()
    with ThreadPoolExecutor(1) as pool:
        service = BrokenService(WebhookConfig(), NoClusterFacts("stand-alone"))
        routes = AdmissionRoutes(httputil.HTTPServerConnectionDelegate(), service, metrics, pool)
        # when a review arrives
        connection = post(routes, "/mutate", b"{}")
    # then the reply is a refusal as an AdmissionReview, counted as an error
    assert connection.status == 500 and connection.finished
    assert connection.review()["response"]["allowed"] is False
    assert connection.headers["Content-Length"] == str(len(connection.body))
    assert metrics.count("mutate", "error") == 1


def test_a_validation_arriving_while_the_server_stops_is_told_to_retry() -> None:
    # given validation that must run on the pool, and the pool already shut down
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    service = AdmissionService(WebhookConfig(), BlockingFacts("no API"))
    routes = AdmissionRoutes(httputil.HTTPServerConnectionDelegate(), service, Metrics(), pool)

    # when a review arrives
    connection = post(routes, "/validate", b"{}")
    # then the API server hears it should retry
    assert connection.status == 503 and connection.finished
    assert "shutting down" in connection.review()["response"]["status"]["message"]
