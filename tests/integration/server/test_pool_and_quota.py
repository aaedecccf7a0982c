"""GET info, pool, quota and price on the local backend, checked against openapi.yaml."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

if TYPE_CHECKING:
    from tests.integration.server.conftest import SimPool
    from tests.support.server_api import Api

Conforms = Callable[[Any, str, str], Any]


def test_info_names_the_backend_and_the_gpu_kernelspecs(api: Api, conforms: Conforms) -> None:
    info = conforms(api("GET", "info"), "/info", "get")
    assert info["backend"] == "local"
    assert info["namespace"] is None
    assert info["kernelspecs"] == [{"name": "python3", "display_name": "Python 3 (test)"}]
    assert info["default_kernelspec"] == "python3"


def test_pool_lists_servers_gpus_and_the_simulated_mark(
    api: Api, conforms: Conforms, sim: SimPool
) -> None:
    # Given someone holds half of one GPU
    sim.lease("-n", "1", "-p", "0.5")
    # When
    pool = conforms(api("GET", "pool"), "/pool", "get")
    # Then
    assert pool["backend"] == "local"
    assert pool["simulated"] is True
    assert [len(s["gpus"]) for s in pool["servers"]] == [2, 2]
    busy = pool["servers"][0]["gpus"][0]
    assert (busy["used_fraction"], busy["free_fraction"], busy["memory_mib"]) == (0.5, 0.5, 16384)
    assert [s["leases"] for s in pool["servers"]] == [1, 0]
    assert (pool["total_gpus"], pool["free_fraction"]) == (4, 0.875)
    assert (pool["largest_server_gpus"], pool["gpu_memory_mib"]) == (2, 16384)


def test_pool_says_plainly_when_the_bitfusion_client_is_down(
    api: Api, conforms: Conforms, sim: SimPool
) -> None:
    # Given
    sim.take_down()
    # When
    response = api("GET", "pool")
    # Then
    error = conforms(response, "/pool", "get")
    assert response.code == 503
    assert "Bitfusion pool is unavailable" in error["message"]
    assert "connection refused" in error["message"]


@pytest.mark.parametrize("extension_config", [{"backend": "local", "cache_ttl": 60.0}])
def test_many_tabs_asking_at_once_cost_one_pool_reading(
    api: Api,
    run: Callable[..., Any],
    jp_fetch: Any,
    jp_serverapp: Any,
) -> None:
    # Given a long cache and a counter of real readings
    service = jp_serverapp.web_app.settings["bf_jupyter_service"]

    # When ten tabs ask together, then ten more ask later
    async def ten() -> list[Any]:
        import asyncio

        calls = [jp_fetch("bitfusion", "api", "pool") for _ in range(10)]
        return list(await asyncio.gather(*calls))

    first, later = run(ten()), run(ten())
    # Then the client ran once
    assert {r.code for r in first + later} == {200}
    assert service._pool_cache.loads == 1


def test_quota_counts_units_against_the_local_limit(api: Api, conforms: Conforms) -> None:
    quota = conforms(api("GET", "quota"), "/quota", "get")
    assert quota["has_quota"] is True
    assert (quota["hard_units"], quota["used_units"], quota["remaining_units"]) == (150, 0, 150)
    assert (quota["hard_gpus"], quota["remaining_gpus"]) == (1.5, 1.5)
    assert quota["message"] == "1.5 of 1.5 GPUs remain (local_quota_units setting)."


@pytest.mark.parametrize("extension_config", [{"backend": "local", "kernelspecs": ["python3"]}])
def test_quota_says_plainly_when_there_is_none(api: Api, conforms: Conforms) -> None:
    quota = conforms(api("GET", "quota"), "/quota", "get")
    assert quota["has_quota"] is False
    assert quota["message"] == "No GPU quota: this server sets no limit."
    assert quota["remaining_units"] is None


PRICES = [  # slice, units, fits, part of the reason
    ("1x50%", 50, True, None),
    ("1", 100, True, None),
    ("2x8Gi", 100, True, None),  # 8 GiB of a 16 GiB GPU = 50 units, twice
    ("-n 1 -p 0.25", 25, True, None),
    ("2x100%", 200, False, "only 150 of 150 remain"),
    ("3x10%", 30, False, "the largest server has 2"),
]


@pytest.mark.parametrize("case", PRICES, ids=[c[0] for c in PRICES])
def test_price_uses_the_slice_contract_and_says_why_it_does_not_fit(
    api: Api, conforms: Conforms, case: tuple[Any, ...]
) -> None:
    slice_text, units, fits, reason = case
    price = conforms(api("GET", "price?" + urlencode({"slice": slice_text})), "/price", "get")
    assert (price["units"], price["fits"]) == (units, fits)
    if reason is None:
        assert price["reason"] is None
    else:
        assert reason in price["reason"]


@pytest.mark.parametrize(
    ("slice_text", "says"),
    [
        ("0x50%", "gpu-amount 0 is out of range"),
        ("1x150%", "gpu-percent 150 is out of range"),
        ("1x32Gi", "exceeds the 16Gi of one GPU"),
    ],
)
def test_price_refuses_a_bad_slice_naming_the_field(
    api: Api, conforms: Conforms, slice_text: str, says: str
) -> None:
    response = api("GET", "price?" + urlencode({"slice": slice_text}))
    error = conforms(response, "/price", "get")
    assert response.code == 400
    assert error["field"] == "slice"
    assert says in error["message"]
