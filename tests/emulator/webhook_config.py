"""Webhook configurations (admissionregistration.k8s.io/v1) read from rendered manifests, and
the rules kube-apiserver uses to decide which webhooks a request goes to: rules (operations,
groups, versions, resources incl. subresources, scope), namespaceSelector, objectSelector and
matchConditions (``match_conditions``)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.emulator import match_conditions
from tests.emulator.selectors import match_label_selector

Obj = dict[str, Any]


def kubectl_path() -> str | None:
    """``$KUBECTL``, else ``kubectl`` on PATH, else /usr/bin/kubectl; None when there is none."""
    for candidate in (os.environ.get("KUBECTL"), shutil.which("kubectl"), "/usr/bin/kubectl"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


MUTATING = "MutatingWebhookConfiguration"
VALIDATING = "ValidatingWebhookConfiguration"


def render_kustomization(directory: Path, *, kubectl: str | None = None) -> list[Obj]:
    """``kubectl kustomize DIR`` as objects. Raises ``RuntimeError`` with kubectl's own message."""
    kubectl = kubectl or kubectl_path()
    if kubectl is None:
        raise RuntimeError(
            "kubectl is not installed: it renders the cluster/ manifests (kustomize)"
        )
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if isinstance(doc, dict)]


@dataclass(frozen=True)
class RequestTarget:
    """What a request is about, as rules see it."""

    operation: str  # CREATE, UPDATE, DELETE, CONNECT
    group: str
    version: str
    resource: str  # plural
    subresource: str
    namespaced: bool

    @property
    def path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _resource_matches(pattern: str, target: RequestTarget) -> bool:
    """``pods``, ``pods/status``, ``pods/*``, ``*/status``, ``*`` (no subresources) or ``*/*``."""
    main, _, sub = pattern.partition("/")
    if pattern in ("*/*", target.path):
        return True
    if not target.subresource:
        return pattern == "*"
    return (main == "*" and sub == target.subresource) or (main == target.resource and sub == "*")


@dataclass(frozen=True)
class Rule:
    operations: tuple[str, ...]
    api_groups: tuple[str, ...]
    api_versions: tuple[str, ...]
    resources: tuple[str, ...]
    scope: str

    def matches(self, target: RequestTarget) -> bool:
        scope_ok = self.scope == "*" or (self.scope == "Namespaced") == target.namespaced
        return (
            bool({"*", target.operation} & set(self.operations))
            and bool({"*", target.group} & set(self.api_groups))
            and bool({"*", target.version} & set(self.api_versions))
            and scope_ok
            and any(_resource_matches(p, target) for p in self.resources)
        )


@dataclass
class Webhook:
    """One entry of a webhook configuration, with its defaults filled as the API would."""

    kind: str  # MUTATING or VALIDATING
    configuration: str
    name: str
    url: str
    service: tuple[str, str, int] | None  # namespace, name, port
    path: str
    ca_bundle: bytes
    rules: list[Rule]
    failure_policy: str
    namespace_selector: Obj
    object_selector: Obj
    side_effects: str
    timeout_seconds: int
    reinvocation: str
    conditions: list[match_conditions.Condition] = field(default_factory=list)

    def applies_to(self, target: RequestTarget) -> bool:
        return any(rule.matches(target) for rule in self.rules)

    def selects(
        self, namespace_labels: Mapping[str, str] | None, object_labels: Iterable[Mapping[str, str]]
    ) -> bool:
        """namespaceSelector (skipped for cluster-scoped objects, None labels) and objectSelector
        (the new or the old object may match)."""
        if namespace_labels is not None and not match_label_selector(
            self.namespace_selector, namespace_labels
        ):
            return False
        return any(match_label_selector(self.object_selector, labels) for labels in object_labels)


def _webhook(kind: str, configuration: str, raw: Obj) -> Webhook:
    client = raw.get("clientConfig") or {}
    service = client.get("service")
    rules = [
        Rule(
            tuple(r.get("operations") or []),
            tuple(r.get("apiGroups") or []),
            tuple(r.get("apiVersions") or []),
            tuple(r.get("resources") or []),
            r.get("scope") or "*",
        )
        for r in raw.get("rules") or []
    ]
    return Webhook(
        kind=kind,
        configuration=configuration,
        name=str(raw["name"]),
        url=str(client.get("url") or ""),
        service=(service["namespace"], service["name"], int(service.get("port", 443)))
        if service
        else None,
        path=str((service or {}).get("path") or "/"),
        ca_bundle=base64.b64decode(client.get("caBundle") or ""),
        rules=rules,
        failure_policy=raw.get("failurePolicy") or "Fail",
        namespace_selector=raw.get("namespaceSelector") or {},
        object_selector=raw.get("objectSelector") or {},
        side_effects=raw.get("sideEffects") or "Unknown",
        timeout_seconds=int(raw.get("timeoutSeconds") or 10),
        reinvocation=raw.get("reinvocationPolicy") or "Never",
        conditions=match_conditions.load(raw.get("matchConditions")),
    )


def load_webhooks(
    objects: Iterable[Obj], *, ca_bundle: bytes | None = None
) -> tuple[list[Webhook], list[Webhook]]:
    """(mutating, validating) webhooks in the order kube-apiserver calls them: configurations
    sorted by name, webhooks in their listed order. ``ca_bundle`` fills an empty ``caBundle`` the
    way cert-manager's CA injector would. Raises ``UnsupportedCel`` for a matchCondition the
    emulator cannot evaluate."""
    mutating: list[Webhook] = []
    validating: list[Webhook] = []
    configurations = sorted(
        (o for o in objects if o.get("kind") in (MUTATING, VALIDATING)),
        key=lambda o: o["metadata"]["name"],
    )
    for configuration in configurations:
        for raw in configuration.get("webhooks") or []:
            webhook = _webhook(configuration["kind"], configuration["metadata"]["name"], raw)
            if not webhook.ca_bundle and ca_bundle:
                webhook.ca_bundle = ca_bundle
            (mutating if webhook.kind == MUTATING else validating).append(webhook)
    return mutating, validating
