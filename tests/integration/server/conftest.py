"""A jupyter-server with the bf-jupyter extension on the local backend, and a pool that answers.

pytest-jupyter's fixtures are imported here, so they apply to this directory only. The project
runs pytest-asyncio in auto mode, which would run ``async def`` tests on a loop of its own while the
server runs on pytest-jupyter's; so tests here are plain functions that ``run(...)`` coroutines on
the server's loop.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from pytest_jupyter.jupyter_server import *  # noqa: F403
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bf_jupyter.kernels.progress import PROGRESS
from tests.support import server_api
from tests.support.kernelspec_files import write_kernelspec

# fixtures for this directory (after pytest-jupyter's, to override its jp_server_config)
run = server_api.run
api = server_api.api
jp_server_config = server_api.jp_server_config


SIM = str(Path(sys.executable).with_name("bitfusion-sim"))


@dataclass
class SimPool:
    """The embedded pool the server reads: bitfusion-sim, two virtual servers of two 16 GiB GPUs."""

    home: Path
    monkeypatch: pytest.MonkeyPatch

    def lease(self, *slice_args: str) -> str:
        """Hold a slice (``"-n", "1", "-p", "0.5"``) as another user would; returns the lease id."""
        done = subprocess.run(
            [SIM, "request_gpus", *slice_args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def take_down(self) -> None:
        """From now on the client fails as one that cannot reach its servers does."""
        script = self.home / "bitfusion-unreachable"
        script.write_text(
            "#!/bin/sh\necho 'Error: cannot reach the Bitfusion servers (connection refused)' >&2\nexit 1\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        self.monkeypatch.setenv("BF_BITFUSION_BIN", str(script))


@pytest.fixture(autouse=True)
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    home = tmp_path / "sim"
    home.mkdir()
    monkeypatch.delenv("BF_BITFUSION_BIN", raising=False)
    monkeypatch.setenv("BF_SIM_HOME", str(home))
    monkeypatch.setenv("BF_SIM_POOL", "virtual")
    monkeypatch.setenv("BF_SIM_SERVERS", "2")
    monkeypatch.setenv("BF_SIM_GPUS", "2")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    return SimPool(home, monkeypatch)


@pytest.fixture
def extension_config() -> dict[str, Any]:
    """``c.BitfusionExtension`` settings for the server under test; tests may change them."""
    return {
        "backend": "local",
        "cache_ttl": 0.0,  # every request reads the pool afresh: tests see changes at once
        "local_quota_units": 150,
        "kernelspecs": ["python3"],  # the local provisioner stands in until bitfusion-local lands
        "launch_timeout": 60.0,
    }


@pytest.fixture(autouse=True)
def _ipykernel_kernelspec(jp_environ: None, jp_data_dir: Path) -> Iterator[None]:
    """The ``python3`` kernelspec runs this interpreter (pytest-jupyter isolates Jupyter paths)."""
    write_kernelspec(jp_data_dir, "python3", display_name="Python 3 (test)")
    os.environ.pop("BF_SLICE", None)
    yield


async def events_of(kernel_id: str, service: Any = None) -> list[str]:
    """Every stage published for a kernel, in order, once it has finished starting (and, given the
    service, once the launch it made has settled, as the event stream waits for)."""
    stages: list[str] = []
    async for event in PROGRESS.follow(kernel_id):
        stages.append(event.stage)
    if service is not None:
        await service.kernels.settled(kernel_id)
    return stages


@pytest.fixture
def follow(run: Callable[[Awaitable[Any]], Any], jp_serverapp: Any) -> Callable[[str], list[str]]:
    """``follow(kernel_id)``: the stages of its start-up, once the launch has settled."""
    service = jp_serverapp.web_app.settings["bf_jupyter_service"]
    return lambda kernel_id: list(run(events_of(kernel_id, service)))


# ----- OpenAPI conformance ------------------------------------------------------------------------

OPENAPI_PATH = Path(__file__).parents[3] / "bf_jupyter" / "server" / "openapi.yaml"


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    return dict(yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def conforms(openapi: dict[str, Any]) -> Callable[[Any, str, str], Any]:
    """``conforms(response, "/pool", "get")``: the response's status is documented for that
    operation and its JSON body matches the documented schema; returns the parsed body."""
    registry = Registry().with_resource(
        "urn:bf-jupyter-openapi", Resource.from_contents(openapi, default_specification=DRAFT202012)
    )

    def check(response: Any, path: str, method: str) -> Any:
        documented = openapi["paths"][path][method]["responses"]
        assert str(response.code) in documented, f"{method} {path} answered {response.code}"
        spec = documented[str(response.code)]
        if "$ref" in spec:
            spec = openapi["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
        content = spec.get("content", {}).get("application/json")
        if content is None:
            return None
        body = json.loads(response.body)
        pointer = json.dumps(content["schema"]).replace('"#/', '"urn:bf-jupyter-openapi#/')
        Draft202012Validator(json.loads(pointer), registry=registry).validate(body)
        return body

    return check
