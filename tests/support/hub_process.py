"""A real JupyterHub for the e2e tests, and a browser-like client of it.

``RunningHub.start(...)`` writes a ``jupyterhub_config.py`` that loads ``examples/hub/jupyterhub_config.py``
(what the README's JupyterHub section shows) and then sets only what a test run needs: the
addresses (hub, proxy and its API on free 127.0.0.1 ports; the pods reach the hub there), the
test namespace, a password authenticator (``DummyAuthenticator``), a service token for the test's
own API calls, and files in a temporary folder. KubeSpawner talks to the API server with the
kubeconfig of the hub's service account (``$KUBECONFIG``), the proxy is the Python
``configurable-http-proxy``, and the single-user server is ``jupyterhub-singleuser`` of this
environment (the process-kubelet runs pods as this machine).

``HubBrowser`` does what a person's browser does: logs in through the login form, opens the spawn
form, and posts it; ``spawn`` then follows the spawn's progress events to ready or failed.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.jupyter_process import free_port
from tests.support.managed_process import ManagedProcess

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "examples" / "hub" / "jupyterhub_config.py"
PASSWORD = "e2e-hub-password"
START_TIMEOUT = 90.0
SPAWN_TIMEOUT = 180.0
_XSRF = re.compile(r'name="_xsrf"\s+value="([^"]+)"')
_ACTION = re.compile(r'<form[^>]*id="spawn_form"[^>]*action="([^"]+)"', re.S)


@dataclass
class SpawnOutcome:
    """How a spawn ended: ready, or failed with the message the spawn page shows."""

    ready: bool
    message: str
    events: list[dict[str, Any]] = field(default_factory=list)
    form_status: int | None = None  # set when the hub answered the POST with the form again


class RunningHub:
    def __init__(
        self, process: ManagedProcess, url: str, hub_url: str, api_token: str, root: Path
    ) -> None:
        self.process = process
        self.url = url  # the proxy's public address: what users open
        self.hub_url = hub_url  # the hub itself: the test's API calls (event streams outlive the proxy's timeout)
        self.api_token = api_token  # the test's own service (admin), for checks and clean-up
        self.root = root

    @classmethod
    def start(
        cls,
        root: Path,
        *,
        namespace: str,
        kubeconfig: Path,
        extra_config: str = "",
        env: Mapping[str, str] | None = None,
    ) -> RunningHub:
        """Start a hub whose state lives in ``root``; ``extra_config`` is appended to the config."""
        root.mkdir(parents=True, exist_ok=True)
        hub_port, proxy_port, proxy_api_port = free_port(), free_port(), free_port()
        api_token = secrets.token_hex(32)
        bin_dir = Path(sys.executable).parent
        config = root / "jupyterhub_config.py"
        config.write_text(
            textwrap.dedent(
                f"""\
                c = get_config()  # noqa: F821
                load_subconfig({str(EXAMPLE_CONFIG)!r})  # noqa: F821
                # ---- the test run's own settings ----
                c.JupyterHub.bind_url = "http://127.0.0.1:{proxy_port}"
                c.JupyterHub.hub_ip = "127.0.0.1"
                c.JupyterHub.hub_port = {hub_port}
                c.JupyterHub.hub_connect_url = "http://127.0.0.1:{hub_port}"
                c.JupyterHub.db_url = "sqlite:///{root / "jupyterhub.sqlite"}"
                c.JupyterHub.cookie_secret_file = {str(root / "cookie_secret")!r}
                c.JupyterHub.authenticator_class = "dummy"
                c.DummyAuthenticator.password = {PASSWORD!r}
                c.Authenticator.allow_all = True
                c.JupyterHub.services.append({{"name": "e2e", "api_token": {api_token!r}}})
                c.JupyterHub.load_roles.append({{"name": "admin", "services": ["e2e"]}})
                c.ConfigurableHTTPProxy.command = [{str(bin_dir / "configurable-http-proxy")!r}]
                c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
                c.ConfigurableHTTPProxy.pid_file = {str(root / "proxy.pid")!r}
                c.KubeSpawner.namespace = {namespace!r}
                c.KubeSpawner.args = ["--allow-root"]  # the process-kubelet runs pods as this user: root
                c.KubeSpawner.start_timeout = {int(SPAWN_TIMEOUT)}
                c.KubeSpawner.http_timeout = {int(SPAWN_TIMEOUT)}  # a loaded CI machine imports slowly
                """
            )
            + extra_config
        )
        environment = {
            **(env or {}),
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(root),
            "KUBECONFIG": str(kubeconfig),
        }
        for name in ("LANG", "LC_ALL", "TMPDIR"):
            if name in os.environ:
                environment.setdefault(name, os.environ[name])
        process = ManagedProcess(
            "jupyterhub",
            [str(bin_dir / "jupyterhub"), "-f", str(config), "--debug"],
            env=environment,
            log_path=root / "jupyterhub.log",
            cwd=root,
        )
        hub = cls(
            process,
            f"http://127.0.0.1:{proxy_port}",
            f"http://127.0.0.1:{hub_port}",
            api_token,
            root,
        )
        try:
            process.wait_for_line(r"JupyterHub is now running", timeout=START_TIMEOUT)
        except BaseException:
            process.stop()
            raise
        return hub

    def stop(self) -> int:
        """SIGTERM: the hub stops every running server (``cleanup_servers``) and the proxy."""
        return self.process.stop(grace=60)

    # ----- the test's own API calls (service token) -----------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.api_token}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 60)
        return requests.request(method, f"{self.hub_url}/hub/api/{path}", headers=headers, **kwargs)

    def user_token(self, user: str) -> str:
        """A new API token of ``user``, as the user would make one on the token page."""
        response = self.api("POST", f"users/{user}/tokens", json={"note": "e2e"})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def stop_server(self, user: str) -> None:
        response = self.api("DELETE", f"users/{user}/server")
        assert response.status_code in (202, 204), response.text
        if response.status_code == 202:
            for event in self.progress(user):
                if event.get("ready") is False:
                    break
            self.wait_stopped(user)

    def wait_stopped(self, user: str, *, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"users/{user}").json()["servers"].get("")
            if not server or not server.get("pending"):
                return
            time.sleep(0.2)  # the hub's REST API has no stop event to wait on
        raise AssertionError(f"{user}'s server still stopping after {timeout:g}s")

    def progress(self, user: str) -> Iterator[dict[str, Any]]:
        """The spawn's progress events, as the spawn-pending page reads them, to the end."""
        with self.api(
            "GET", f"users/{user}/server/progress", stream=True, timeout=SPAWN_TIMEOUT
        ) as response:
            for raw in response.iter_lines():
                line = raw.decode("utf-8")
                if line.startswith("data:"):
                    yield json.loads(line[len("data:") :])

    def browser(self, user: str) -> HubBrowser:
        return HubBrowser(self, user)


class HubBrowser:
    """One user's browser session: cookies, and the ``_xsrf`` value each form carries."""

    def __init__(self, hub: RunningHub, user: str) -> None:
        self.hub = hub
        self.user = user
        self.session = requests.Session()

    def login(self) -> HubBrowser:
        page = self.session.get(f"{self.hub.url}/hub/login", timeout=30)
        page.raise_for_status()
        response = self.session.post(
            f"{self.hub.url}/hub/login",
            data={"username": self.user, "password": PASSWORD, "_xsrf": _xsrf_of(page.text)},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, (
            f"login failed ({response.status_code}): {response.text}"
        )
        return self

    def spawn_form(self) -> str:
        """The spawn page's HTML (the options form rendered for this user)."""
        page = self.session.get(f"{self.hub.url}/hub/spawn", timeout=60)
        assert page.status_code == 200, page.text
        return page.content.decode(
            "utf-8"
        )  # the hub names no charset; requests would guess latin-1

    def spawn(self, choices: Mapping[str, str]) -> SpawnOutcome:
        """Post the spawn form with ``choices`` (form field → value) as the browser does, then
        follow the spawn: the form page again with an error, or the progress to its end."""
        action = _ACTION.search(self.spawn_form())
        assert action, "the spawn page has no spawn form"
        # the form's action carries the page's _xsrf token; the browser posts multipart form data
        response = self.session.post(
            f"{self.hub.url}{html.unescape(action.group(1))}",
            files={name: (None, value) for name, value in choices.items()},
            allow_redirects=False,
            timeout=60,
        )
        if response.status_code != 302:
            return SpawnOutcome(
                False,
                _error_on_form(response.content.decode("utf-8")),
                form_status=response.status_code,
            )
        events = list(self.hub.progress(self.user))
        last = events[-1] if events else {}
        return SpawnOutcome(bool(last.get("ready")), str(last.get("message", "")), events)

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.hub.url}{path}", timeout=60)


def _xsrf_of(html: str) -> str:
    match = _XSRF.search(html)
    assert match, "the page carries no _xsrf field"
    return match.group(1)


def _error_on_form(html: str) -> str:
    """The error the hub shows above the spawn form (its ``spawn-error-msg`` block)."""
    match = re.search(r'class="[^"]*spawn-error-msg[^"]*"[^>]*>(.*?)</div>', html, re.S)
    text = match.group(1) if match else html
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()
