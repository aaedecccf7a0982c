"""The whole local backend, real parts only: bitfusion-sim's pool and the bitfusion-local provisioner.

Skipped until the provisioner is installed (it comes from its own branch).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.kernelspec_files import write_kernelspec

if TYPE_CHECKING:
    from tests.support.server_api import Api

Conforms = Callable[[Any, str, str], Any]

_HAVE_PROVISIONER = any(
    ep.name == "bitfusion-local" for ep in entry_points(group="jupyter_client.kernel_provisioners")
)
_HAVE_SIM = importlib.util.find_spec("bf_jupyter.bitfusion.sim.cli") is not None
pytestmark = pytest.mark.skipif(
    not (_HAVE_PROVISIONER and _HAVE_SIM),
    reason="needs the bitfusion-local provisioner and bitfusion-sim installed",
)


@pytest.fixture
def extension_config() -> dict[str, Any]:
    return {"backend": "local", "cache_ttl": 0.0, "launch_timeout": 60.0}  # kernelspecs: detected


@pytest.fixture(autouse=True)
def _bitfusion_local_kernelspec(jp_data_dir: Path) -> None:
    write_kernelspec(
        jp_data_dir,
        "bitfusion-local",
        display_name="Python 3 (Bitfusion GPU, local)",
        provisioner="bitfusion-local",
    )


def test_a_half_gpu_kernel_holds_a_sim_lease_while_it_runs(
    follow: Callable[[str], list[str]],
    api: Api,
    conforms: Conforms,
    run: Callable[..., Any],
    jp_serverapp: Any,
) -> None:
    # Given the simulated pool, free
    pool = conforms(api("GET", "pool"), "/pool", "get")
    assert pool["simulated"] is True
    assert conforms(api("GET", "info"), "/info", "get")["default_kernelspec"] == "bitfusion-local"
    # When a kernel starts on half a GPU through the sidebar's API
    kernel_id = json.loads(api("POST", "kernels", {"slice": "1x50%"}).body)["id"]
    stages = follow(kernel_id)
    # Then it is ready, on the provisioner's slice, holding a lease in the pool
    assert stages[-1] == "ready", stages
    (listed,) = conforms(api("GET", "kernels"), "/kernels", "get")
    assert (listed["slice"], listed["kernelspec"]) == ("1x50%", "bitfusion-local")
    provisioner = jp_serverapp.kernel_manager.get_kernel(kernel_id).provisioner
    assert provisioner.gpu_slice.to_text() == "1x50%"
    leases = sum(s["leases"] for s in conforms(api("GET", "pool"), "/pool", "get")["servers"])
    assert leases == 1
    # When it is stopped, the lease goes with it
    assert api("DELETE", f"kernels/{kernel_id}").code == 204
    leases = sum(s["leases"] for s in conforms(api("GET", "pool"), "/pool", "get")["servers"])
    assert leases == 0
