"""Parsing the client's reports: typed records, never a crash, unknown text kept."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bf_jupyter.bitfusion.records import parse_health, parse_list_gpus

REAL_STYLE = """\
 - server 0 [10.117.32.177:56001]: running 0 tasks
   |- GPU 0: free memory 16160 MiB / 16160 MiB
   |- GPU 1: free memory 8080 MiB / 16160 MiB
 - server 1 [10.117.32.178:56001]: running 2 tasks
   |- GPU 0: free memory 0 MiB / 16160 MiB
"""

SIM_STYLE = """\
Simulated pool (bitfusion-sim): no real GPUs behind it
 - server 0 [sim-0 (simulated)]: running 1 tasks
   |- GPU 0: free memory 8192 MiB / 16384 MiB (Simulated GPU 16GiB)
   |- GPU 1: free memory 16384 MiB / 16384 MiB (Simulated GPU 16GiB)
   |- lease 7: 1x50% on GPUs [0] held by pid 4242 (python) since 2026-11-26T12:00:00Z
"""


def test_list_gpus_in_the_real_clients_shape() -> None:
    pool = parse_list_gpus(REAL_STYLE)
    assert [s.address for s in pool.servers] == ["10.117.32.177:56001", "10.117.32.178:56001"]
    assert pool.total_gpus == 3
    assert pool.largest_server_gpus == 2
    assert pool.servers[0].gpus[1].used_fraction == 0.5
    assert pool.gpu_memory_mib == 16160
    assert not pool.simulated
    assert pool.unparsed == ()


def test_list_gpus_from_the_simulator_has_names_leases_and_the_simulated_mark() -> None:
    pool = parse_list_gpus(SIM_STYLE)
    assert pool.simulated
    server = pool.servers[0]
    assert server.address == "sim-0"
    assert server.gpus[0].name == "Simulated GPU 16GiB"
    lease = server.leases[0]
    assert (lease.lease_id, lease.slice_text, lease.gpus, lease.holder) == (
        "7",
        "1x50%",
        (0,),
        "pid 4242 (python)",
    )
    assert pool.unparsed == ("Simulated pool (bitfusion-sim): no real GPUs behind it",)


@given(st.text())
def test_list_gpus_never_raises_on_any_text(text: str) -> None:
    pool = parse_list_gpus(text)
    assert pool.raw == text


def test_health_follows_exit_code_and_failed_checks() -> None:
    assert parse_health("Checking servers ... OK\nChecking token: PASSED\n", 0).healthy
    report = parse_health("Checking servers ... OK\nChecking network: FAILED\n", 0)
    assert not report.healthy
    assert [c.passed for c in report.checks] == [True, False]
    assert not parse_health("whatever", 1).healthy


def test_a_verdict_must_be_a_word_of_its_own() -> None:
    report = parse_health("Using notebook\nChecking servers ... OK\n", 0)
    assert [c.text for c in report.checks] == ["Checking servers"]
