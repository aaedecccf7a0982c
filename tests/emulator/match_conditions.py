"""``matchConditions`` evaluated with a real CEL implementation (``cel-python``), plus the
Kubernetes CEL library functions kube-apiserver adds that cel-python lacks (the ``strings``
extension, ``lists`` and ``regex`` libraries). An expression that calls anything else fails at
load time with ``UnsupportedCel`` — a test runs every shipped expression through ``load`` so the
manifests cannot drift outside what is emulated."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

# CEL's standard functions and macros (cel-spec), which cel-python implements.
STANDARD = frozenset(
    {
        "has", "size", "int", "uint", "double", "string", "bytes", "bool", "duration", "timestamp",
        "type", "dyn", "matches", "contains", "startsWith", "endsWith", "all", "exists",
        "exists_one", "map", "filter", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
        "getFullYear", "getHours", "getMilliseconds", "getMinutes", "getMonth", "getSeconds",
    }
)  # fmt: skip


class UnsupportedCel(ValueError):
    """An expression does not parse, or calls a function the emulator does not provide."""


def _functions() -> dict[str, Callable[..., Any]]:
    from celpy import celtypes

    s, lst = celtypes.StringType, celtypes.ListType

    def index_of(target: Any, item: Any, start: Any = 0) -> Any:
        if isinstance(target, str):
            return celtypes.IntType(target.find(str(item), int(start)))
        return celtypes.IntType(list(target).index(item) if item in target else -1)

    def last_index_of(target: Any, item: Any) -> Any:
        if isinstance(target, str):
            return celtypes.IntType(target.rfind(str(item)))
        items = list(target)
        return celtypes.IntType(len(items) - 1 - items[::-1].index(item) if item in items else -1)

    def split(text: Any, separator: Any, limit: Any = -1) -> Any:
        parts = (
            list(text)
            if separator == ""
            else str(text).split(str(separator), int(limit) - 1 if int(limit) > 0 else -1)
        )
        return lst([s(p) for p in parts])

    def find(text: Any, pattern: Any) -> Any:
        found = re.search(str(pattern), str(text))
        return s(found.group(0) if found else "")

    return {
        "lowerAscii": lambda text: s(str(text).lower()),
        "upperAscii": lambda text: s(str(text).upper()),
        "trim": lambda text: s(str(text).strip()),
        "charAt": lambda text, i: s(str(text)[int(i)] if int(i) < len(text) else ""),
        "substring": lambda text, a, b=None: s(str(text)[int(a) : None if b is None else int(b)]),
        "replace": lambda text, old, new, n=-1: s(str(text).replace(str(old), str(new), int(n))),
        "join": lambda items, sep="": s(str(sep).join(str(i) for i in items)),
        "indexOf": index_of,
        "lastIndexOf": last_index_of,
        "split": split,
        "find": find,
        "findAll": lambda text, pattern: lst(
            [s(m.group(0)) for m in re.finditer(str(pattern), str(text))]
        ),
        "isSorted": lambda items: celtypes.BoolType(list(items) == sorted(items)),
        "sum": lambda items: sum(items, celtypes.IntType(0)),
        "min": min,
        "max": max,
    }


# The Kubernetes CEL library functions ``_functions`` provides.
EXTENSIONS = frozenset(
    {"lowerAscii", "upperAscii", "trim", "charAt", "substring", "replace", "join", "indexOf",
     "lastIndexOf", "split", "find", "findAll", "isSorted", "sum", "min", "max"}
)  # fmt: skip


def called_functions(expression: str) -> set[str]:
    """Every function or method name an expression calls."""
    import celpy
    from lark import Token

    try:
        tree = celpy.Environment().compile(expression)
    except Exception as error:
        raise UnsupportedCel(f"CEL expression {expression!r} does not parse: {error}") from None
    names: set[str] = set()
    for node in tree.iter_subtrees():
        if (
            node.data == "member_dot_arg"
            and len(node.children) > 1
            and isinstance(node.children[1], Token)
        ):
            names.add(str(node.children[1]))
        elif node.data == "ident_arg" and node.children and isinstance(node.children[0], Token):
            names.add(str(node.children[0]))
    return names


@dataclass(frozen=True)
class Condition:
    name: str
    expression: str
    program: Any


def load(conditions: Sequence[Mapping[str, Any]] | None) -> list[Condition]:
    """Compile a webhook's matchConditions; ``UnsupportedCel`` names what cannot be emulated."""
    import celpy

    environment = celpy.Environment()
    functions = _functions()
    loaded: list[Condition] = []
    for condition in conditions or []:
        expression = str(condition.get("expression", ""))
        unknown = called_functions(expression) - STANDARD - EXTENSIONS
        if unknown:
            raise UnsupportedCel(
                f"matchCondition {condition.get('name')!r} calls {', '.join(sorted(unknown))}, which the emulator's CEL does not provide"
            )
        program = environment.program(environment.compile(expression), functions=functions)
        loaded.append(Condition(str(condition.get("name", "")), expression, program))
    return loaded


def evaluate(conditions: Sequence[Condition], variables: Mapping[str, Any]) -> tuple[bool, str]:
    """(matched, error). All conditions must be true; an evaluation error (a missing map key, a type
    mismatch) returns (False, message) so the caller applies the webhook's failurePolicy, as
    kube-apiserver does. A false condition wins over an error in another, as in Kubernetes."""
    import celpy
    from celpy.evaluation import CELEvalError

    activation = {name: celpy.adapter.json_to_cel(value) for name, value in variables.items()}
    error = ""
    for condition in conditions:
        try:
            result = condition.program.evaluate(activation)
        except CELEvalError as failure:
            error = (
                error
                or f"matchCondition {condition.name!r} failed: {failure.args[0] if failure.args else failure}"
            )
            continue
        if isinstance(result, CELEvalError):
            error = (
                error
                or f"matchCondition {condition.name!r} failed: {result.args[0] if result.args else result}"
            )
            continue
        if not bool(result):
            return False, ""
    return (not error), error
