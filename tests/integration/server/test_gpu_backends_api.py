"""GET info and price per GPU backend, on the local server, checked against openapi.yaml."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

if TYPE_CHECKING:
    from tests.support.server_api import Api

Conforms = Callable[[Any, str, str], Any]
TWO_BACKENDS = {
    "backend": "local",
    "kernelspecs": ["python3"],
    "gpu_backends": ["bitfusion", "hami"],
}


def test_info_offers_bitfusion_with_its_forms_and_isolation(api: Api, conforms: Conforms) -> None:
    info = conforms(api("GET", "info"), "/info", "get")
    assert info["default_gpu_backend"] == "bitfusion"
    (bitfusion,) = info["gpu_backends"]
    assert bitfusion["forms"] == ["whole", "percent", "memory", "filters"]
    assert bitfusion["isolation"]["label"] == "remote GPU, memory share"


@pytest.mark.parametrize("extension_config", [TWO_BACKENDS])
def test_info_lists_the_configured_backends_in_order(api: Api, conforms: Conforms) -> None:
    info = conforms(api("GET", "info"), "/info", "get")
    assert [b["name"] for b in info["gpu_backends"]] == ["bitfusion", "hami"]
    assert "cores" in info["gpu_backends"][1]["forms"]


def test_bitfusion_price_keeps_its_units_and_adds_the_charges(api: Api, conforms: Conforms) -> None:
    price = conforms(api("GET", "price?" + urlencode({"slice": "1x50%"})), "/price", "get")
    assert (price["units"], price["fits"], price["backend"]) == (50, True, "bitfusion")
    assert price["charges"][0]["quota_keys"] == ["requests.bitfusion.io/gpu", "bitfusion.io/gpu"]


@pytest.mark.parametrize("extension_config", [TWO_BACKENDS])
def test_price_on_hami_charges_its_keys(api: Api, conforms: Conforms) -> None:
    query = urlencode({"slice": "1x8Gi cores=30", "backend": "hami"})
    price = conforms(api("GET", "price?" + query), "/price", "get")
    assert (price["backend"], price["fits"], price["units"]) == ("hami", True, None)
    assert {c["resource"]: c["amount"] for c in price["charges"]} == {
        "nvidia.com/gpu": 1,
        "nvidia.com/gpumem": 8192,
        "nvidia.com/gpucores": 30,
    }
    assert price["isolation"]["label"] == "memory and cores limited in the container"


@pytest.mark.parametrize("extension_config", [TWO_BACKENDS])
def test_a_form_the_backend_lacks_does_not_fit_with_the_alternative(
    api: Api, conforms: Conforms
) -> None:
    query = urlencode({"slice": "mig-1g.10gb", "backend": "hami"})
    price = conforms(api("GET", "price?" + query), "/price", "get")
    assert price["fits"] is False
    assert price["reason"].startswith("mig-profile mig-1g.10gb cannot be honoured by HAMi: ask for")


def test_a_backend_not_offered_is_a_400_naming_the_field(api: Api, conforms: Conforms) -> None:
    response = api("GET", "price?" + urlencode({"slice": "1", "backend": "nvidia"}))
    error = conforms(response, "/price", "get")
    assert response.code == 400
    assert error == {
        "message": "backend nvidia is not offered here: use bitfusion",
        "field": "backend",
    }
