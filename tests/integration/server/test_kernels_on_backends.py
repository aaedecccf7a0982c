"""POST kernels on every GPU backend: priced and checked with the launch's backend, not Bitfusion's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kernelspec_files import write_kernelspec
from tests.support.server_api import Api, kernel_output

Conforms = Callable[[Any, str, str], Any]
PROVE_BACKEND = "import os; print(os.environ['BF_GPU_BACKEND'], os.environ['BF_SLICE'], end='')"


@pytest.fixture
def extension_config() -> dict[str, Any]:
    return {
        "backend": "local",
        "cache_ttl": 0.0,
        "kernelspecs": ["python3", "tied-to-nvidia"],
        "gpu_backends": ["bitfusion", "hami", "nvidia"],
        "launch_timeout": 60.0,
    }


@pytest.fixture(autouse=True)
def _tied_kernelspec(jp_environ: None, jp_data_dir: Path) -> Iterator[None]:
    """A kernelspec whose provisioner config ties it to the nvidia backend (never started here)."""
    write_kernelspec(
        jp_data_dir,
        "tied-to-nvidia",
        display_name="Tied to NVIDIA",
        provisioner="local-provisioner",
        config={"gpu_backend": "nvidia"},
    )
    yield


def test_a_hami_slice_with_cores_launches_on_hami(
    *,
    api: Api,
    conforms: Conforms,
    follow: Callable[[str], list[str]],
    run: Callable[..., Any],
    jp_serverapp: Any,
) -> None:
    # When a kernel is asked for on 8 GiB and 30 % of the compute of a HAMi GPU
    body = {"slice": "1x8Gi cores=30", "kernelspec": "python3", "backend": "hami"}
    response = api("POST", "kernels", body)
    launched = conforms(response, "/kernels", "post")
    # Then it is accepted on HAMi (no Bitfusion units), and the kernel gets both
    assert response.code == 202
    assert (launched["backend"], launched["slice"], launched["units"]) == (
        "hami", "1x8Gi cores=30", None,
    )  # fmt: skip
    assert follow(launched["id"])[-1] == "ready"
    (listed,) = conforms(api("GET", "kernels"), "/kernels", "get")
    assert (listed["slice"], listed["units"]) == ("1x8Gi cores=30", None)
    output = run(kernel_output(jp_serverapp, launched["id"], PROVE_BACKEND))
    assert output == "hami 1x8Gi cores=30"
    api("DELETE", f"kernels/{launched['id']}")


def test_a_mig_profile_launches_on_nvidia(
    *, api: Api, conforms: Conforms, follow: Callable[[str], list[str]]
) -> None:
    body = {"slice": "mig-1g.10gb", "kernelspec": "python3", "backend": "nvidia"}
    response = api("POST", "kernels", body)
    launched = conforms(response, "/kernels", "post")
    assert response.code == 202
    assert (launched["backend"], launched["slice"]) == ("nvidia", "1xmig-1g.10gb")
    assert follow(launched["id"])[-1] == "ready"
    api("DELETE", f"kernels/{launched['id']}")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"slice": "mig-1g.10gb", "backend": "hami"},
            "slice",
            "mig-profile mig-1g.10gb cannot be honoured by HAMi: ask for",
        ),
        (
            {"slice": "1x8Gi cores=30"},  # the default backend, bitfusion, has no compute share
            "slice",
            "cores=30",
        ),
        ({"slice": "1", "backend": "nvidia-mps"}, "backend", "backend nvidia-mps is not offered"),
        ({"slice": "1", "backend": ["hami"]}, "backend", 'backend ["hami"] is not a text value'),
        (
            {"slice": "1", "backend": "hami", "kernelspec": "tied-to-nvidia"},
            "backend",
            "backend hami cannot run kernelspec tied-to-nvidia: it runs on the nvidia backend only",
        ),
    ],
)
def test_a_launch_the_backend_cannot_serve_is_a_400_and_starts_nothing(
    api: Api, conforms: Conforms, body: dict[str, Any], field: str, message: str
) -> None:
    response = api("POST", "kernels", {"kernelspec": "python3", **body})
    error = conforms(response, "/kernels", "post")
    assert response.code == 400
    assert error["field"] == field
    assert message in error["message"]
    assert conforms(api("GET", "kernels"), "/kernels", "get") == []
