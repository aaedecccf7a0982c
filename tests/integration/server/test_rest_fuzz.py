"""Fuzz the REST API from its own description (``openapi.yaml``): no request may answer 5xx.

A generator driven by the document (no extra dependency): for every operation it sends values
the schema allows, values of every other JSON type, strings that are hostile to the slice parser
(huge, control characters, Unicode, percent signs, filters), malformed JSON and odd path ids.
Deterministic (fixed seed) and bounded (``REQUESTS``). The quota is 0 units, so no launch can
start a kernel: every accepted slice is refused with 409, and the run stays fast.
"""

from __future__ import annotations

import json
import random
import string
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

REQUESTS = 5_000
SEED = 20_240_613

_SLICES = [
    "1",
    "1x50%",
    "2x8Gi",
    "1x100%",
    "3x1%",
    "1x50% device.name=V100",
    "0",
    "1x0%",
    "1x101%",
    "x",
    "1x",
    "x50%",
    "1x50",
    "2x0Gi",
    "1x17Gi",
    "99999999999999999999x50%",
    "1x50%%",
    "1 x 50 %",
    "-1x50%",
    "1.5x50%",
    "1x50.5%",
    "1x8Gi device.name=",
    "١x٥٠%",
    "1x50% =",
    "1x50% a=b=c",
    "1x1e3%",
    "1xNaN%",
    "1xinf",
    "\u00001",
    "1x50%\n",
]


def _text(rng: random.Random) -> str:
    choice = rng.randrange(6)
    if choice == 0:
        return rng.choice(_SLICES)
    if choice == 1:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(0, 40)))
    if choice == 2:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(1, 20)))
    if choice == 3:
        return rng.choice(_SLICES) * rng.randrange(1, 2000)  # long
    if choice == 4:
        return rng.choice(_SLICES) + " " + "".join(rng.choice("=.%x/") for _ in range(8))
    return ""


def _value(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value: the wrong type for a field as often as the right one."""
    kind = rng.randrange(8 if depth < 2 else 6)
    if kind == 6:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    if kind == 7:
        return {_text(rng)[:10]: _value(rng, depth + 1) for _ in range(rng.randrange(3))}
    scalars: list[Any] = [
        None,
        rng.choice([True, False]),
        rng.randrange(-(2**70), 2**70),
        rng.choice([0.5, -1.0, 1e308, 1e-308]),
        _text(rng),
        _text(rng),
    ]
    return scalars[kind]


def _launch_body(rng: random.Random, schema: dict[str, Any]) -> str:
    """A body for ``POST kernels``: from the LaunchRequest schema, mutated."""
    body: dict[str, Any] = {}
    for name in schema["properties"]:
        if name in schema["required"] and rng.random() < 0.5:
            body[name] = rng.choice(_SLICES[:6])  # well-formed: reaches the quota check
        elif rng.random() < 0.5:
            body[name] = _text(rng) if rng.random() < 0.6 else _value(rng)
    if rng.random() < 0.2:
        body[_text(rng)[:12] or "extra"] = _value(rng)
    roll = rng.random()
    if roll < 0.05:
        return "{not json"
    if roll < 0.1:
        return json.dumps(_value(rng))  # not an object
    if roll < 0.12:
        return ""
    return json.dumps(body)


def _kernel_id(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(36))
    return urllib.parse.quote(_text(rng)[:60] or "x", safe="")


Request = tuple[str, str, dict[str, str], Any]


def _requests(openapi: dict[str, Any], rng: random.Random) -> Iterator[Request]:
    """(method, path under /bitfusion/api, query, body) for every operation, in a seeded mix."""
    launch = openapi["components"]["schemas"]["LaunchRequest"]
    operations = [
        (path, method)
        for path, item in openapi["paths"].items()
        for method in item
        if method in {"get", "post", "delete"}
    ]
    for _ in range(REQUESTS):
        path, method = rng.choice(operations)
        concrete = path.replace("{id}", _kernel_id(rng))
        body, query = None, {}
        if path == "/price":
            if rng.random() < 0.95:
                query["slice"] = _text(rng)
        elif path == "/kernels" and method == "post":
            body = _launch_body(rng, launch)
        elif rng.random() < 0.05:
            query[_text(rng)[:10] or "q"] = _text(rng)[:20]
        yield method.upper(), concrete, query, body


@pytest.fixture
def extension_config() -> dict[str, Any]:
    return {
        "backend": "local",
        "cache_ttl": 60.0,  # the pool is read once: the fuzz exercises the API, not the client
        "local_quota_units": 0,  # no launch can start a kernel
        "kernelspecs": ["python3"],
    }


@pytest.mark.slow
def test_five_thousand_generated_requests_never_answer_5xx(
    jp_fetch: Any,
    run: Callable[[Awaitable[Any]], Any],
    openapi: dict[str, Any],
    jp_serverapp: Any,
) -> None:
    rng = random.Random(SEED)
    failures: list[str] = []
    statuses: dict[int, int] = {}

    async def send_all() -> None:
        for method, path, query, body in _requests(openapi, rng):
            response = await jp_fetch(
                "bitfusion/api" + path,
                method=method,
                params=query,
                body=body,
                raise_error=False,
                allow_nonstandard_methods=True,
            )
            statuses[response.code] = statuses.get(response.code, 0) + 1
            if response.code >= 500:
                failures.append(
                    f"{method} {path[:80]} {query!r:.80} {body!r:.80} -> {response.code}"
                )

    run(send_all())

    assert sum(statuses.values()) == REQUESTS
    assert failures == [], f"{len(failures)} answers were 5xx, e.g. {failures[:5]}"
    # every kind of answer was reached: reads, bad slices, quota refusals, unknown kernels
    assert all(statuses.get(code, 0) > 50 for code in (200, 400, 404, 409)), statuses
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []
