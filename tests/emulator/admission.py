"""The webhook admission chain, as kube-apiserver runs it.

Mutating webhooks are called one after another in configuration-name order, each seeing the
object as the previous ones left it (JSONPatch responses applied, defaults re-applied); webhooks
with ``reinvocationPolicy: IfNeeded`` are called once more if a later webhook changed the object.
Validating webhooks are then called in parallel. Each call is an AdmissionReview v1 over HTTPS,
verified against the configuration's ``caBundle`` for the service's DNS name
(``NAME.NAMESPACE.svc``), which the ``services`` table resolves to a local address the way a
Service resolves to its endpoints. ``timeoutSeconds`` bounds each call; ``failurePolicy`` decides
what a failed call (or a matchCondition error) does; denials come back as kube-apiserver words them.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import ssl
import uuid
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from tests.emulator import errors, match_conditions
from tests.emulator.defaults import default_object
from tests.emulator.kinds import resource_for_kind
from tests.emulator.patches import JSON_PATCH, apply_patch
from tests.emulator.webhook_config import RequestTarget

if TYPE_CHECKING:
    from tests.emulator.registry import AdmissionAttributes
    from tests.emulator.store import Store
    from tests.emulator.webhook_config import Webhook


Obj = dict[str, Any]
Address = tuple[str, int]
_log = logging.getLogger(__name__)


class WebhookCallError(Exception):
    """Calling a webhook failed (kube-apiserver's ErrCallingWebhook); subject to failurePolicy."""


def denial(webhook: str, status: Mapping[str, Any] | None) -> errors.ApiError:
    """kube-apiserver's error for a webhook's ``allowed: false`` (its ToStatusErr)."""
    status = status or {}
    code = int(status.get("code") or 0)
    denied_by = f'admission webhook "{webhook}" denied the request'
    if status.get("message"):
        message = f"{denied_by}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied_by}: {status['reason']}"
    else:
        message = f"{denied_by} without explanation"
    return errors.ApiError(
        max(code, 400),
        str(status.get("reason") or ""),
        message,
        details=dict(status.get("details") or {}),
    )


class WebhookAdmission:
    def __init__(
        self,
        store: Store,
        mutating: list[Webhook],
        validating: list[Webhook],
        *,
        services: MutableMapping[tuple[str, str], Address],
    ) -> None:
        self.store = store
        self.mutating = mutating
        self.validating = validating
        self.services = services  # shared: a Service may get its endpoint after start-up
        self.calls: list[tuple[str, str]] = []  # (webhook, operation), for tests that count calls

    # ----- the two phases -------------------------------------------------------------------------

    async def mutate(self, attrs: AdmissionAttributes) -> None:
        seen_changes: dict[str, int] = {}  # webhook → changes made up to and by its call
        changes = 0
        for webhook in self.mutating:
            outcome = await self._call_if_selected(webhook, attrs)
            if outcome is not None:
                changes += int(outcome)
                seen_changes[webhook.name] = changes
        for webhook in self.mutating:  # one reinvocation round, as kube-apiserver
            if webhook.reinvocation != "IfNeeded" or webhook.name not in seen_changes:
                continue
            if changes > seen_changes[webhook.name] and await self._call_if_selected(
                webhook, attrs
            ):
                changes += 1

    async def validate(self, attrs: AdmissionAttributes) -> None:
        outcomes = await asyncio.gather(
            *(self._call_if_selected(w, attrs) for w in self.validating), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    # ----- one webhook ----------------------------------------------------------------------------

    async def _call_if_selected(self, webhook: Webhook, attrs: AdmissionAttributes) -> bool | None:
        """Call ``webhook`` if the request matches it: None when not called (or ignored after a
        failure), else whether it changed the object."""
        if not self._matches(webhook, attrs):
            return None
        if attrs.dry_run and webhook.side_effects not in ("None", "NoneOnDryRun"):
            raise errors.bad_request(f'admission webhook "{webhook.name}" does not support dry run')
        try:
            matched, problem = match_conditions.evaluate(
                webhook.conditions, self._cel_variables(attrs)
            )
            if problem:
                raise WebhookCallError(f"failed to evaluate match conditions: {problem}")
            if not matched:
                return None
            self.calls.append((webhook.name, attrs.operation))
            review = await self._post(webhook, self._review(attrs))
        except WebhookCallError as failure:
            if webhook.failure_policy == "Ignore":
                _log.warning(
                    "failed calling webhook %r (ignored by failurePolicy): %s",
                    webhook.name,
                    failure,
                )
                return None
            raise errors.internal(f'failed calling webhook "{webhook.name}": {failure}') from None
        response = review["response"]
        if not response.get("allowed"):
            raise denial(webhook.name, response.get("status"))
        patch = response.get("patch")
        if not patch or webhook.kind != "MutatingWebhookConfiguration" or attrs.obj is None:
            return False
        if response.get("patchType") != "JSONPatch":
            raise errors.internal(
                f'failed calling webhook "{webhook.name}": unsupported patch type {response.get("patchType")!r}'
            )
        try:
            operations = json.loads(base64.b64decode(patch))
        except ValueError as error:
            raise errors.internal(
                f'failed calling webhook "{webhook.name}": patch is not base64 JSON: {error}'
            ) from None
        patched = apply_patch(attrs.obj, operations, JSON_PATCH)
        default_object(attrs.resource, patched)
        if patched == attrs.obj:
            return False
        attrs.obj.clear()
        attrs.obj.update(patched)
        return True

    def _matches(self, webhook: Webhook, attrs: AdmissionAttributes) -> bool:
        resource = attrs.resource
        target = RequestTarget(
            attrs.operation,
            resource.group,
            resource.version,
            resource.plural,
            attrs.subresource,
            resource.namespaced,
        )
        if not webhook.applies_to(target):
            return False
        if resource.kind == "Namespace":
            labels = ((attrs.obj or attrs.old_obj or {}).get("metadata") or {}).get("labels") or {}
            namespace_labels: Mapping[str, str] | None = labels
        elif resource.namespaced:
            namespace = self.store.find(resource_for_kind("Namespace"), "", attrs.namespace)
            namespace_labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
        else:
            namespace_labels = None
        object_labels = [
            ((o.get("metadata") or {}).get("labels") or {})
            for o in (attrs.obj, attrs.old_obj)
            if o is not None
        ]
        return webhook.selects(namespace_labels, object_labels)

    def _review(self, attrs: AdmissionAttributes) -> Obj:
        resource = attrs.resource
        kind = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        gvr = {"group": resource.group, "version": resource.version, "resource": resource.plural}
        request: Obj = {
            "uid": str(uuid.uuid4()),
            "kind": kind,
            "resource": gvr,
            "requestKind": kind,
            "requestResource": gvr,
            "namespace": attrs.namespace,
            "operation": attrs.operation,
            "userInfo": attrs.user,
            "object": copy.deepcopy(attrs.obj),
            "oldObject": copy.deepcopy(attrs.old_obj),
            "dryRun": attrs.dry_run,
            "options": attrs.options,
        }
        if attrs.name:
            request["name"] = attrs.name
        if attrs.subresource:
            request["subResource"] = request["requestSubResource"] = attrs.subresource
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}

    def _cel_variables(self, attrs: AdmissionAttributes) -> Obj:
        request = self._review(attrs)["request"]
        return {"object": attrs.obj, "oldObject": attrs.old_obj, "request": request}

    # ----- the HTTPS call -------------------------------------------------------------------------

    def _endpoint(self, webhook: Webhook) -> tuple[str, dict[Any, Any]]:
        """The URL kube-apiserver would call and the host mapping standing in for the Service."""
        if webhook.url:
            return webhook.url, {}
        assert webhook.service is not None
        namespace, name, port = webhook.service
        host = f"{name}.{namespace}.svc"
        address = self.services.get((namespace, name))
        if address is None:
            raise WebhookCallError(f'service "{name}" not found')
        return f"https://{host}:{port}{webhook.path}", {(host, port): address}

    async def _post(self, webhook: Webhook, review: Obj) -> Obj:
        from tornado.httpclient import HTTPClientError, HTTPRequest
        from tornado.simple_httpclient import HTTPTimeoutError, SimpleAsyncHTTPClient

        url, mapping = self._endpoint(webhook)
        separator = "&" if "?" in url else "?"
        url = f"{url}{separator}timeout={webhook.timeout_seconds}s"
        context = ssl.create_default_context(
            cadata=webhook.ca_bundle.decode() if webhook.ca_bundle else None
        )
        client = SimpleAsyncHTTPClient(force_instance=True, hostname_mapping=mapping)
        request = HTTPRequest(
            url,
            method="POST",
            body=json.dumps(review),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            connect_timeout=webhook.timeout_seconds,
            request_timeout=webhook.timeout_seconds,
            ssl_options=context,
        )
        shown = url.split("?")[0]
        try:
            response = await client.fetch(request)
        except HTTPTimeoutError:
            raise WebhookCallError(
                f'failed to call webhook: Post "{url}": context deadline exceeded'
            ) from None
        except HTTPClientError as error:
            raise WebhookCallError(
                f'failed to call webhook: the server responded with HTTP {error.code} for Post "{shown}"'
            ) from None
        except (OSError, ssl.SSLError) as error:
            raise WebhookCallError(f'failed to call webhook: Post "{url}": {error}') from None
        finally:
            client.close()
        return self._parse(response.body, review["request"]["uid"])

    @staticmethod
    def _parse(body: bytes, uid: str) -> Obj:
        try:
            review = json.loads(body)
        except ValueError as error:
            raise WebhookCallError(f"received invalid webhook response: {error}") from None
        if (
            not isinstance(review, dict)
            or review.get("kind") != "AdmissionReview"
            or review.get("apiVersion") != "admission.k8s.io/v1"
        ):
            raise WebhookCallError(
                "received invalid webhook response: expected an admission.k8s.io/v1 AdmissionReview"
            )
        response = review.get("response")
        if not isinstance(response, dict):
            raise WebhookCallError("received invalid webhook response: no response")
        if response.get("uid") != uid:
            raise WebhookCallError(f"expected response.uid={uid!r}, got {response.get('uid')!r}")
        return review
