"""Label and field selectors in the API's query syntax (``labelSelector``, ``fieldSelector``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.emulator.errors import bad_request
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


def label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """A predicate over a labels map. Raises a 400 ApiError naming the bad term."""
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    for term in _split_terms(text or ""):
        if match := _SET_TERM.match(term):
            key, values = match["key"], {v.strip() for v in match["values"].split(",") if v.strip()}
            if match["op"] == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif match := _EQ_TERM.match(term):
            key, value = match["key"], match["value"]
            if match["op"] == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif match := _EXISTS_TERM.match(term):
            key = match["key"]
            if match["neg"]:
                checks.append(lambda labels, k=key: k not in labels)
            else:
                checks.append(lambda labels, k=key: k in labels)
        else:
            raise bad_request(f"unable to parse requirement: {term.strip()!r}: invalid label selector")
    return lambda labels: all(check(labels) for check in checks)


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


def field_selector(text: str, resource: ResourceType) -> Predicate:
    """A predicate over whole objects. Fields the real API does not index for ``resource`` are
    refused with its 400 ("field label not supported"), so tests cannot rely on what a real
    cluster would reject."""
    allowed = {"metadata.name", "metadata.namespace", *resource.field_labels}
    checks: list[Predicate] = []
    for term in _split_terms(text or ""):
        match = _EQ_TERM.match(term)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term.strip()}'")
        key, value, negate = match["key"], match["value"], match["op"] == "!="
        if key not in allowed:
            raise bad_request(f'field label not supported: {key}')
        checks.append(
            lambda obj, k=key, v=value, n=negate: (field_value(obj, k) == v) != n
        )
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
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = set(expression.get("values") or [])
        ok = {
            "In": lambda k=key, vs=values: labels.get(k) in vs,
            "NotIn": lambda k=key, vs=values: labels.get(k) not in vs,
            "Exists": lambda k=key: k in labels,
            "DoesNotExist": lambda k=key: k not in labels,
        }.get(operator)
        if ok is None or not ok():
            return False
    return True
