"""``local_quota_units`` holds for every kernel on a slice: launched through our REST API, or
through the stock ``/api/kernels`` and ``/api/sessions`` with a GPU kernelspec; memory-mode slices
are priced like the rest (1x8Gi of a 16 GiB GPU costs 50 units)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.kernelspec_files import write_kernelspec

if TYPE_CHECKING:
    from tests.support.server_api import Api

pytestmark = pytest.mark.skipif(
    not any(
        ep.name == "bitfusion-local"
        for ep in entry_points(group="jupyter_client.kernel_provisioners")
    ),
    reason="needs the bitfusion-local provisioner installed",
)


@pytest.fixture
def extension_config() -> dict[str, Any]:
    return {"backend": "local", "cache_ttl": 0.0, "launch_timeout": 60.0, "local_quota_units": 100}


def _kernelspec(jp_data_dir: Path, name: str, default_slice: str) -> None:
    write_kernelspec(
        jp_data_dir,
        name,
        display_name=f"GPU {default_slice}",
        provisioner="bitfusion-local",
        config={"default_slice": default_slice},
    )


@pytest.fixture(autouse=True)
def _gpu_kernelspecs(jp_data_dir: Path) -> None:
    _kernelspec(jp_data_dir, "gpu-sixty", "1x60%")
    _kernelspec(jp_data_dir, "gpu-memory", "1x8Gi")


@pytest.fixture
def stock(jp_fetch: Any, run: Callable[[Awaitable[Any]], Any]) -> Callable[..., Any]:
    """``stock("kernels", {...})``: a POST to jupyter_server's own API; errors are returned."""

    def post(path: str, body: dict[str, Any]) -> Any:
        return run(jp_fetch("api", path, method="POST", body=json.dumps(body), raise_error=False))

    return post


def _used(api: Api) -> int:
    return int(json.loads(api("GET", "quota").body)["used_units"])


def test_a_stock_api_kernel_counts_against_the_quota_and_one_more_is_refused(
    api: Api, stock: Callable[..., Any], jp_serverapp: Any
) -> None:
    # given a GPU kernel started through the stock /api/kernels, on its kernelspec's 1x60%
    started = stock("kernels", {"name": "gpu-sixty"})
    assert started.code == 201, started.body
    assert _used(api) == 60
    # when a second one is asked for, through the stock API, a session, or ours
    again = stock("kernels", {"name": "gpu-sixty"})
    session = stock(
        "sessions", {"path": "a.ipynb", "type": "notebook", "kernel": {"name": "gpu-sixty"}}
    )
    ours = api("POST", "kernels", {"slice": "1x50%", "kernelspec": "gpu-sixty"})
    # then each is refused, saying what is left, and nothing more runs
    assert again.code == 409
    assert "costs 60 bitfusion.io/gpu units but only 40 of 100 remain" in again.body.decode()
    assert session.code in {
        409,
        500,
    }  # jupyter_server's sessions handler answers 500 for any failed start
    assert "costs 60 bitfusion.io/gpu units" in session.body.decode()
    assert ours.code == 409
    assert len(jp_serverapp.kernel_manager.list_kernel_ids()) == 1
    assert _used(api) == 60


def test_a_memory_mode_kernel_is_priced_and_freed_when_it_stops(
    api: Api, stock: Callable[..., Any], run: Callable[[Awaitable[Any]], Any], jp_serverapp: Any
) -> None:
    # given a kernel on 8 GiB of one 16 GiB GPU, started through the stock API
    started = stock("kernels", {"name": "gpu-memory"})
    assert started.code == 201, started.body
    kernel_id = json.loads(started.body)["id"]
    # then it costs half a GPU, and shows so in the listing
    assert _used(api) == 50
    (listed,) = json.loads(api("GET", "kernels").body)
    assert (listed["slice"], listed["units"]) == ("1x8Gi", 50)
    # and a 60 % kernel no longer fits
    assert stock("kernels", {"name": "gpu-sixty"}).code == 409
    # when it stops, its units are free again
    run(jp_serverapp.kernel_manager.shutdown_kernel(kernel_id))
    assert _used(api) == 0
    assert stock("kernels", {"name": "gpu-sixty"}).code == 201
