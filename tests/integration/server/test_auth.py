"""Every handler of the extension refuses anonymous callers, and cookie-authenticated writes need XSRF."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from bf_jupyter.server.handlers import default_handlers

_VERBS = ("get", "post", "put", "patch", "delete")


def _extension_routes(web_app: Any) -> list[tuple[str, type]]:
    """(regex, handler class) of every rule the server holds under /bitfusion/, however added."""
    routes = []
    for host_rule in web_app.default_router.rules:
        for rule in getattr(host_rule.target, "rules", []):
            pattern = rule.matcher.regex.pattern
            if "bitfusion" in pattern:
                routes.append((pattern, rule.target))
    return routes


def _verbs(handler: type) -> list[str]:
    from tornado.web import RequestHandler

    return [v for v in _VERBS if getattr(handler, v) is not getattr(RequestHandler, v)]


def _example_url(pattern: str) -> str:
    return re.sub(r"\(\?P<\w+>[^)]*\)", "0f0e0d0c-0000-0000-0000-000000000000", pattern).rstrip("$")


def test_every_extension_handler_refuses_a_caller_without_credentials(
    jp_web_app: Any, http_server_client: Any, run: Callable[..., Any]
) -> None:
    # Given every route registered under /bitfusion/
    routes = _extension_routes(jp_web_app)
    assert len(routes) == len(default_handlers)
    checked = []
    for pattern, handler in routes:
        for verb in _verbs(handler):
            # When called with no token and no cookie
            body = "{}" if verb in {"post", "put", "patch"} else None
            response = run(
                http_server_client.fetch(
                    _example_url(pattern),
                    method=verb.upper(),
                    body=body,
                    allow_nonstandard_methods=True,
                    raise_error=False,
                )
            )
            # Then it is refused before anything runs
            assert response.code == 403, f"{verb.upper()} {pattern} answered {response.code}"
            checked.append(f"{verb.upper()} {pattern}")
    assert len(checked) >= 7


def test_every_route_is_documented_in_openapi(jp_web_app: Any, openapi: dict[str, Any]) -> None:
    documented = {
        (path.replace("{id}", "X"), verb)
        for path, ops in openapi["paths"].items()
        for verb in ops
        if verb in _VERBS
    }
    served = set()
    for pattern, handler in _extension_routes(jp_web_app):
        path = re.sub(r"\(\?P<\w+>[^)]*\)", "X", pattern).rstrip("$").split("/bitfusion/api", 1)[1]
        served |= {(path, verb) for verb in _verbs(handler)}
    assert served == documented


def test_a_cookie_authenticated_write_needs_the_xsrf_token(
    jp_serverapp: Any,
    http_server_client: Any,
    jp_http_port: int,
    jp_base_url: str,
    run: Callable[..., Any],
) -> None:
    client = AsyncHTTPClient()
    root = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    # Given a browser session logged in with the token (the server sets its cookies)
    login = run(
        client.fetch(
            f"{root}?token={jp_serverapp.identity_provider.token}",
            follow_redirects=False,
            raise_error=False,
        )
    )
    cookies = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))
    xsrf = re.search(r"_xsrf=([^;]+)", cookies)
    assert xsrf is not None and "username-" in cookies
    url = f"{root}bitfusion/api/kernels"
    body = json.dumps(
        {"slice": "1x150%"}
    )  # refused by validation if it gets that far: nothing starts
    # When it posts with the cookie but without the XSRF header
    bare = run(client.fetch(HTTPRequest(url, "POST", {"Cookie": cookies}, body), raise_error=False))
    # Then it is refused
    assert bare.code == 403
    assert b"_xsrf" in bare.body or b"XSRF" in bare.body
    # When it echoes the token
    headers = {"Cookie": cookies, "X-XSRFToken": xsrf.group(1)}
    echoed = run(client.fetch(HTTPRequest(url, "POST", headers, body), raise_error=False))
    # Then the request reaches the API (and is judged on its merits)
    assert echoed.code == 400
    assert json.loads(echoed.body)["field"] == "slice"
