"""``bf-jupyter pool``: the client's listing for people and as JSON."""

from __future__ import annotations

import json

from bf_jupyter.bitfusion.client import BitfusionClient, pool_report
from bf_jupyter.bitfusion.pool_command import render_pool
from bf_jupyter.bitfusion.records import parse_list_gpus
from tests.unit.bitfusion.test_records import REAL_STYLE, SIM_STYLE

SIM = BitfusionClient(("/venv/bin/bitfusion-sim",), "embedded", True)
REAL = BitfusionClient(("/usr/bin/bitfusion",), "path", False)


def test_the_text_view_shows_usage_bars_leases_the_client_and_the_simulated_mark() -> None:
    text = render_pool(SIM, parse_list_gpus(SIM_STYLE))
    assert text.splitlines()[:2] == [
        "Pool:   simulated (virtual GPUs, no real GPU behind them)",
        "Client: /venv/bin/bitfusion-sim (simulator, embedded)",
    ]
    assert (
        "  GPU 0  Simulated GPU 16GiB  [#####.....]   8192 / 16384 MiB used, 8192 MiB free" in text
    )
    assert (
        "  lease 7  1x50%  on GPU 0  held by pid 4242 (python)  since 2026-11-26T12:00:00Z" in text
    )


def test_a_real_clients_pool_is_shown_as_real_gpus() -> None:
    text = render_pool(REAL, parse_list_gpus(REAL_STYLE))
    assert text.startswith(
        "Pool:   real GPUs\nClient: /usr/bin/bitfusion (Bitfusion client, on PATH)"
    )
    assert "server 1  10.117.32.178:56001  running 2 tasks" in text
    assert "The client also said" not in text


def test_the_json_report_carries_client_servers_gpus_and_leases() -> None:
    report = json.loads(json.dumps(pool_report(SIM, parse_list_gpus(SIM_STYLE))))
    assert report["client"]["name"] == "bitfusion-sim"
    assert report["client"]["source"] == "embedded"
    pool = report["pool"]
    assert (pool["simulated"], pool["total_gpus"], pool["gpu_memory_mib"]) == (True, 2, 16384)
    gpu = pool["servers"][0]["gpus"][0]
    assert (gpu["memory_used_mib"], gpu["used_fraction"]) == (8192, 0.5)
    assert pool["servers"][0]["leases"] == [
        {
            "id": "7",
            "slice": "1x50%",
            "gpus": [0],
            "holder": "pid 4242 (python)",
            "since": "2026-11-26T12:00:00Z",
        }
    ]
