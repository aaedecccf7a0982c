"""Who calls the emulated API, and may they: bearer tokens to users, and RBAC as kube-apiserver
evaluates it.

The admin token (the kubeconfig ``EmulatedCluster`` writes) belongs to ``system:masters`` and may do
anything. Further users (``EmulatedCluster.add_user``) get a token and a kubeconfig of their own;
their requests are authorized against the Role, ClusterRole, RoleBinding and ClusterRoleBinding
objects given to ``grant``, by kube-apiserver's rules:

- the verb comes from the request: GET of one object ``get``, of a collection ``list``, with
  ``watch=true`` ``watch``; POST ``create``, PUT ``update``, PATCH ``patch``, DELETE of one object
  ``delete``, of a collection ``deletecollection``;
- a subresource is its own resource (``pods/log``); ``resourceNames`` limit a rule to named objects
  (a list or watch names one with ``fieldSelector=metadata.name=X``);
- a ClusterRoleBinding grants its ClusterRole everywhere; a RoleBinding grants its Role (or a
  ClusterRole) in its own namespace only, and a ServiceAccount subject without a namespace means
  one in the binding's namespace.

A refusal is kube-apiserver's 403 ``Forbidden`` Status. Every request of a user other than the admin
is recorded with its verdict (``audit``), so a test can compare what a component calls with what
its shipped role allows.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.emulator import errors

Obj = dict[str, Any]
ADMIN_NAME = "kubernetes-admin"
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ("system:authenticated",)

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups

    def info(self) -> Obj:
        """As an AdmissionReview's ``userInfo`` carries it."""
        return {"username": self.name, "groups": list(self.groups)}


ADMIN = User(ADMIN_NAME, ("system:masters", "system:authenticated"))


def service_account(namespace: str, name: str) -> User:
    """The user a pod with service account ``namespace/name`` authenticates as."""
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


@dataclass(frozen=True)
class Request:
    """What RBAC decides on: the verb, the resource (``pods/log`` for a subresource), where."""

    verb: str
    api_group: str
    resource: str  # plural, with "/subresource" when there is one
    namespace: str | None  # None: cluster-scoped, or every namespace
    name: str = ""

    def describe(self) -> str:
        where = f"in namespace {self.namespace}" if self.namespace else "at the cluster scope"
        group = f"{self.api_group}/" if self.api_group else ""
        return f"{self.verb} {group}{self.resource} {where}"


@dataclass(frozen=True)
class AuditRecord:
    user: str
    request: Request
    allowed: bool


def request_verb(method: str, *, named: bool, watching: bool) -> str:
    """kube-apiserver's verb for an HTTP method on one object (``named``) or a collection."""
    if method == "GET":
        return "watch" if watching else ("get" if named else "list")
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch"}
    if method in verbs:
        return verbs[method]
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return method.lower()


def name_from_field_selector(selector: str) -> str:
    """``metadata.name=X`` in a list or watch's field selector names the object, as for RBAC."""
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if key.strip() == "metadata.name" and value and not value.startswith("="):
            return value.strip()
    return ""


class Authorizer:
    """Tokens, users, RBAC objects and the audit of non-admin requests. Thread-safe."""

    def __init__(self, admin_token: str) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, User] = {admin_token: ADMIN}
        self._objects: list[Obj] = []
        self._audit: list[AuditRecord] = []

    # ----- authentication -------------------------------------------------------------------------

    def add_user(self, user: User) -> str:
        """A new bearer token for ``user``."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = user
        return token

    def authenticate(self, token: str) -> User | None:
        if not token:
            return None
        with self._lock:
            for known, user in self._tokens.items():
                if hmac.compare_digest(known, token):
                    return user
        return None

    # ----- RBAC objects -----------------------------------------------------------------------------

    def grant(self, objects: Iterable[Obj]) -> None:
        """Add RBAC objects (namespaced ones carry ``metadata.namespace``); other kinds are ignored."""
        wanted = [dict(o) for o in objects if o.get("kind") in RBAC_KINDS]
        for obj in wanted:
            if obj["kind"] in ("Role", "RoleBinding") and not obj["metadata"].get("namespace"):
                raise ValueError(f"{obj['kind']} {obj['metadata']['name']} has no namespace")
        with self._lock:
            self._objects.extend(wanted)

    def revoke(self, kind: str, name: str, namespace: str | None = None) -> None:
        with self._lock:
            self._objects = [
                o
                for o in self._objects
                if not (
                    o["kind"] == kind
                    and o["metadata"]["name"] == name
                    and o["metadata"].get("namespace") == namespace
                )
            ]

    # ----- decisions ------------------------------------------------------------------------------

    def check(self, user: User, request: Request) -> None:
        """Return if ``user`` may make ``request``, else raise the API's 403 (recorded either way)."""
        if user.is_admin:
            return
        with self._lock:
            allowed = any(
                _rule_allows(rule, request) for rule in self._rules_for(user, request.namespace)
            )
            self._audit.append(AuditRecord(user.name, request, allowed))
        if not allowed:
            raise forbidden(user, request)

    def audit(self, user: str | None = None) -> list[AuditRecord]:
        """The recorded requests (of ``user`` only, when given), oldest first."""
        with self._lock:
            return [r for r in self._audit if user is None or r.user == user]

    def clear_audit(self) -> None:
        with self._lock:
            self._audit.clear()

    def _rules_for(self, user: User, namespace: str | None) -> list[Obj]:
        """Every rule bound to ``user`` that applies to a request in ``namespace``."""
        roles = {
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
            for o in self._objects
            if o["kind"] in ("Role", "ClusterRole")
        }
        rules: list[Obj] = []
        for binding in self._objects:
            if binding["kind"] == "ClusterRoleBinding":
                bound_in: str | None = None
            elif binding["kind"] == "RoleBinding":
                bound_in = binding["metadata"]["namespace"]
                if bound_in != namespace:
                    continue
            else:
                continue
            if not any(_subject_is(s, user, bound_in) for s in binding.get("subjects") or []):
                continue
            ref = binding["roleRef"]
            role_namespace = bound_in if ref["kind"] == "Role" else None
            role = roles.get((ref["kind"], role_namespace, ref["name"]))
            if role is not None:
                rules.extend(role.get("rules") or [])
        return rules


def _subject_is(subject: Obj, user: User, binding_namespace: str | None) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == user.name)
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        # A RoleBinding may leave the namespace out: the binding's own is meant.
        namespace = subject.get("namespace") or binding_namespace
        return (
            bool(namespace) and user.name == f"system:serviceaccount:{namespace}:{subject['name']}"
        )
    return False


def _rule_allows(rule: Obj, request: Request) -> bool:
    groups = rule.get("apiGroups") or []
    if "*" not in groups and request.api_group not in groups:
        return False
    verbs = rule.get("verbs") or []
    if "*" not in verbs and request.verb not in verbs:
        return False
    if not any(_resource_matches(r, request.resource) for r in rule.get("resources") or []):
        return False
    names = rule.get("resourceNames") or []
    return not names or request.name in names


def _resource_matches(pattern: str, resource: str) -> bool:
    if pattern in ("*", resource):
        return True
    main, _, sub = resource.partition("/")
    if pattern == f"*/{sub}" and sub:
        return True
    return pattern == f"{main}/*" and bool(sub)


def forbidden(user: User, request: Request) -> errors.ApiError:
    """kube-apiserver's wording for a request RBAC refused."""
    main = request.resource.split("/")[0]
    subject = f'{main} "{request.name}"' if request.name else main
    group = request.api_group
    where = (
        f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    )
    return errors.ApiError(
        403,
        "Forbidden",
        f'{subject} is forbidden: User "{user.name}" cannot {request.verb} resource '
        f'"{request.resource}" in API group "{group}" {where}',
    )
