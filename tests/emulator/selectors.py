"""Label and field selectors in the API's query syntax (``labelSelector``, ``fieldSelector``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.emulator.errors import bad_request

if TYPE_CHECKING:
    from tests.emulator.kinds import ResourceType

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

_SET_TERM = re.compile(r"^\s*(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*(?P<key>[^\s!=()]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=()]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=()]+)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside ``( )`` (set terms hold commas)."""
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: ``key`` compared by ``operator`` with ``values``."""

    key: str
    operator: str  # in, notin, =, !=, exists, !exists
    values: frozenset[str] = frozenset()

    def __call__(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator in ("in", "="):
            return value in self.values
        if self.operator in ("notin", "!="):
            return value not in self.values
        return (self.key in labels) == (self.operator == "exists")


def parse_label_selector(text: str) -> list[Requirement]:
    """The terms of a ``labelSelector``; a 400 ApiError names a term that does not parse."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        if match := _SET_TERM.match(term):
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            requirements.append(Requirement(match["key"], match["op"], values))
        elif match := _EQ_TERM.match(term):
            operator = "!=" if match["op"] == "!=" else "="
            requirements.append(Requirement(match["key"], operator, frozenset({match["value"]})))
        elif match := _EXISTS_TERM.match(term):
            requirements.append(Requirement(match["key"], "!exists" if match["neg"] else "exists"))
        else:
            raise bad_request(
                f"unable to parse requirement: {term.strip()!r}: invalid label selector"
            )
    return requirements


def label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """A predicate over a labels map. Raises a 400 ApiError naming the bad term."""
    requirements = parse_label_selector(text)
    return lambda labels: all(requirement(labels) for requirement in requirements)


def field_value(obj: Obj, path: str) -> str:
    """The string form of a dotted field (``status.phase``); missing fields read as ""."""
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    value: str
    negate: bool

    def __call__(self, obj: Obj) -> bool:
        return (field_value(obj, self.path) == self.value) != self.negate


def field_selector(text: str, resource: ResourceType) -> Predicate:
    """A predicate over whole objects. Fields the real API does not index for ``resource`` are
    refused with its 400 ("field label not supported"), so tests cannot rely on what a real
    cluster would reject."""
    allowed = {"metadata.name", "metadata.namespace", *resource.field_labels}
    checks: list[FieldRequirement] = []
    for term in _split_terms(text or ""):
        match = _EQ_TERM.match(term)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term.strip()}'")
        if match["key"] not in allowed:
            raise bad_request(f"field label not supported: {match['key']}")
        checks.append(FieldRequirement(match["key"], match["value"], match["op"] == "!="))
    return lambda obj: all(check(obj) for check in checks)


def object_filter(resource: ResourceType, labels: str, fields: str) -> Predicate:
    """Both selectors as one predicate over objects."""
    by_labels = label_selector(labels)
    by_fields = field_selector(fields, resource)
    return lambda obj: by_labels((obj.get("metadata") or {}).get("labels") or {}) and by_fields(obj)


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A structured ``LabelSelector`` (matchLabels + matchExpressions), as webhook configurations
    use for namespaceSelector/objectSelector. An empty or missing selector matches everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators.get(str(expression.get("operator", "")))
        if operator is None:
            return False
        requirement = Requirement(
            str(expression.get("key", "")), operator, frozenset(expression.get("values") or [])
        )
        if not requirement(labels):
            return False
    return True
