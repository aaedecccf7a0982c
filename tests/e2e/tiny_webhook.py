"""A tiny admission webhook for testing the emulator's admission chain against the AdmissionReview v1
contract before (and independently of) the project's own webhook: HTTPS with a throw-away CA, on
its own thread.

- ``/label`` adds the label ``tiny-webhook/seen=<call count>`` and an annotation (JSONPatch);
- ``/tag`` adds the annotation ``tiny-webhook/tagged: "yes"`` (used to trigger reinvocation);
- ``/deny`` refuses with status 403 Forbidden and a message naming the pod;
- ``/slow`` answers after ``slow_seconds`` (to pass a webhook's timeoutSeconds).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
from typing import Any

Obj = dict[str, Any]
SERVICE_NAMESPACE = "tiny-system"
SERVICE_NAME = "tiny-webhook"


class TinyWebhook:
    def __init__(self, *, slow_seconds: float = 3.0) -> None:
        import trustme

        self.slow_seconds = slow_seconds
        self.reviews: list[tuple[str, Obj]] = []  # (path, AdmissionReview request)
        self._authority = trustme.CA()
        self.ca_pem = self._authority.cert_pem.bytes()
        self._cert = self._authority.issue_cert(f"{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self.port = 0

    def start(self) -> TinyWebhook:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            self._server.stop()
            await self._server.close_all_connections()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def calls(self, path: str) -> list[Obj]:
        return [request for p, request in self.reviews if p == path]

    async def _start(self) -> None:
        import tornado.httpserver
        import tornado.netutil
        import tornado.web

        webhook = self

        class Handler(tornado.web.RequestHandler):
            async def post(self, path: str) -> None:
                request = json.loads(self.request.body)["request"]
                webhook.reviews.append((path, request))
                if path == "slow":
                    await asyncio.sleep(webhook.slow_seconds)
                response = webhook.answer(path, request)
                self.set_header("Content-Type", "application/json")
                self.write(
                    json.dumps(
                        {
                            "apiVersion": "admission.k8s.io/v1",
                            "kind": "AdmissionReview",
                            "response": response,
                        }
                    )
                )

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        app = tornado.web.Application([(r"/(\w+)", Handler)], log_function=lambda _handler: None)
        self._server = tornado.httpserver.HTTPServer(app, ssl_options=context)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]

    def answer(self, path: str, request: Obj) -> Obj:
        response: Obj = {"uid": request["uid"], "allowed": True}
        obj = request.get("object") or {}
        if path == "deny":
            name = obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get(
                "generateName", ""
            )
            response.update(
                allowed=False,
                status={
                    "code": 403,
                    "reason": "Forbidden",
                    "message": f"tiny webhook refuses pod {name}",
                },
            )
            return response
        patch: list[Obj] = []
        metadata = obj.get("metadata") or {}
        if path == "label":
            if "labels" not in metadata:
                patch.append({"op": "add", "path": "/metadata/labels", "value": {}})
            patch.append(
                {
                    "op": "add",
                    "path": "/metadata/labels/tiny-webhook~1seen",
                    "value": str(len(self.calls("label"))),
                }
            )
        if (
            path == "tag"
            and (metadata.get("annotations") or {}).get("tiny-webhook/tagged") != "yes"
        ):
            if "annotations" not in metadata:
                patch.append({"op": "add", "path": "/metadata/annotations", "value": {}})
            patch.append(
                {"op": "add", "path": "/metadata/annotations/tiny-webhook~1tagged", "value": "yes"}
            )
        if patch:
            response.update(
                patchType="JSONPatch", patch=base64.b64encode(json.dumps(patch).encode()).decode()
            )
        return response


def configuration(kind: str, name: str, webhooks: list[Obj]) -> Obj:
    """A v1 webhook configuration whose webhooks call this tiny webhook's Service."""
    filled = []
    for webhook in webhooks:
        entry = dict(webhook)
        path, service = entry.pop("path"), entry.pop("service", SERVICE_NAME)
        entry.setdefault("admissionReviewVersions", ["v1"])
        entry.setdefault("sideEffects", "None")
        entry.setdefault(
            "rules",
            [
                {
                    "operations": ["CREATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                }
            ],
        )
        entry["clientConfig"] = {
            "service": {
                "namespace": SERVICE_NAMESPACE,
                "name": service,
                "path": f"/{path}",
                "port": 443,
            }
        }
        filled.append(entry)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": filled,
    }
