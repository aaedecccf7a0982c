"""POST/GET/DELETE kernels and the start-up event stream, on the local backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.server_api import Api, kernel_output

if TYPE_CHECKING:
    from tests.integration.server.conftest import SimPool

Conforms = Callable[[Any, str, str], Any]


def test_a_gpu_kernel_starts_on_its_slice_is_listed_and_stops(
    *,
    follow: Callable[[str], list[str]],
    api: Api,
    conforms: Conforms,
    run: Callable[..., Any],
    jp_serverapp: Any,
) -> None:
    # When a kernel is asked for on half a GPU
    response = api("POST", "kernels", {"slice": "1x50%", "kernelspec": "python3"})
    launched = conforms(response, "/kernels", "post")
    kernel_id = launched["id"]
    # Then the answer comes at once and the start is followed to ready
    assert response.code == 202
    assert launched == {
        "id": kernel_id, "slice": "1x50%", "kernelspec": "python3", "backend": "bitfusion",
        "state": "starting", "units": 50,
    }  # fmt: skip
    assert response.headers["Location"].endswith(f"/bitfusion/api/kernels/{kernel_id}")
    stages = follow(kernel_id)
    assert stages[0] == "requested"
    assert stages[-1] == "ready"
    # and the kernel received the slice in its environment
    prove_slice = "import os; print(os.environ.get('BF_SLICE', ''), end='')"
    assert run(kernel_output(jp_serverapp, kernel_id, prove_slice)) == "1x50%"
    # and it is listed, and its units count against the quota
    (listed,) = conforms(api("GET", "kernels"), "/kernels", "get")
    assert (listed["id"], listed["slice"], listed["units"], listed["kernelspec"]) == (
        kernel_id, "1x50%", 50, "python3",
    )  # fmt: skip
    assert listed["state"] in {"idle", "busy", "starting"}
    assert listed["age_seconds"] >= 0
    # and its GPU meter says "no GPU reading" (bitfusion-sim's virtual pool), never zeros
    assert listed["gpu"] is None and listed["gpu_idle"] is None
    assert conforms(api("GET", "quota"), "/quota", "get")["used_units"] == 50
    # When it is stopped
    stopped = api("DELETE", f"kernels/{kernel_id}")
    # Then it is gone, from the list, the kernel manager and the quota
    assert stopped.code == 204
    assert conforms(api("GET", "kernels"), "/kernels", "get") == []
    assert kernel_id not in jp_serverapp.kernel_manager
    assert conforms(api("GET", "quota"), "/quota", "get")["used_units"] == 0


def test_the_event_stream_replays_progress_as_server_sent_events(
    follow: Callable[[str], list[str]],
    api: Api,
    conforms: Conforms,
    run: Callable[..., Any],
) -> None:
    kernel_id = json.loads(api("POST", "kernels", {"slice": "1"}).body)["id"]
    follow(kernel_id)
    # When a late tab follows the events
    response = api("GET", f"kernels/{kernel_id}/events")
    # Then it gets every event, the last one final
    assert response.code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    frames = [f for f in response.body.decode().split("\n\n") if f.strip()]
    events = [json.loads(f.split("data: ", 1)[1]) for f in frames]
    assert frames[0].startswith("event: requested\n")
    assert [e["final"] for e in events][-1] is True
    assert events[-1]["stage"] == "ready"
    assert {e["kernel_id"] for e in events} == {kernel_id}
    api("DELETE", f"kernels/{kernel_id}")


def test_a_kernel_that_cannot_start_fails_with_its_reason_and_leaves_nothing(
    *,
    follow: Callable[[str], list[str]],
    api: Api,
    conforms: Conforms,
    run: Callable[..., Any],
    jp_data_dir: Path,
    jp_serverapp: Any,
    extension_config: dict[str, Any],
) -> None:
    # Given a kernelspec whose program does not exist
    broken = jp_data_dir / "kernels" / "broken"
    broken.mkdir(parents=True)
    argv = ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (broken / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Broken"}))
    jp_serverapp.web_app.settings["bf_jupyter_service"]._configured_specs.append("broken")
    # When it is launched
    kernel_id = json.loads(api("POST", "kernels", {"slice": "1x50%", "kernelspec": "broken"}).body)[
        "id"
    ]
    # Then the start fails with the reason, listed as failed, holding no quota
    assert follow(kernel_id)[-1] == "failed"
    (listed,) = conforms(api("GET", "kernels"), "/kernels", "get")
    assert listed["state"] == "failed"
    assert "The kernel did not start" in listed["reason"]
    assert "/nonexistent/python" in listed["reason"]
    assert conforms(api("GET", "quota"), "/quota", "get")["used_units"] == 0
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []
    # and stopping it forgets it
    assert api("DELETE", f"kernels/{kernel_id}").code == 204
    assert conforms(api("GET", "kernels"), "/kernels", "get") == []


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"slice": "1x150%"}, "slice", "gpu-percent 150 is out of range: use 1–100"),
        ({"slice": "two"}, "slice", "gpu-amount two is not a whole number"),
        ({}, "slice", "slice is missing"),
        (
            {"slice": "1x50%", "kernelspec": "ruby"},
            "kernelspec",
            "kernelspec ruby does not run on a GPU slice",
        ),
        ({"slice": "1x50%", "path": 7}, "path", "path 7 is not a text value: send a text path"),
        ({"slice": "1x50%", "kernelspec": [1]}, "kernelspec", "kernelspec [1] is not a text value"),
        ({"slice": "1x50%", "kernelspec": {"a": 1}}, "kernelspec", 'kernelspec {"a": 1} is not'),
        ({"slice": "1x50%", "kernelspec": 3}, "kernelspec", "kernelspec 3 is not a text value"),
        ({"slice": ["1x50%"]}, "slice", 'slice ["1x50%"] is not a text value'),
        ({"slice": 1}, "slice", "slice 1 is not a text value"),
        ({"slice": "1x50%", "path": ["a"]}, "path", 'path ["a"] is not a text value'),
    ],
)
def test_a_bad_launch_is_refused_with_the_field_and_starts_nothing(
    *,
    api: Api,
    conforms: Conforms,
    jp_serverapp: Any,
    body: dict[str, Any],
    field: str,
    says: str,
) -> None:
    response = api("POST", "kernels", body)
    error = conforms(response, "/kernels", "post")
    assert response.code == 400
    assert error["field"] == field
    assert says in error["message"]
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []


def test_a_launch_over_quota_is_refused_with_the_quota_message(
    api: Api, conforms: Conforms, jp_serverapp: Any
) -> None:
    response = api("POST", "kernels", {"slice": "2x80%"})
    error = conforms(response, "/kernels", "post")
    assert response.code == 409
    assert error["message"] == (
        "2 GPUs × 80 % costs 160 bitfusion.io/gpu units but only 150 of 150 remain in the quota "
        "(local_quota_units setting)"
    )
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []


def test_a_launch_while_the_pool_is_down_is_refused_with_503(
    api: Api, conforms: Conforms, sim: SimPool, jp_serverapp: Any
) -> None:
    sim.take_down()
    response = api("POST", "kernels", {"slice": "1x50%"})
    error = conforms(response, "/kernels", "post")
    assert response.code == 503
    assert error["message"].startswith("The Bitfusion pool is unavailable:")
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []


def test_unknown_kernels_are_404(api: Api, conforms: Conforms) -> None:
    assert conforms(api("DELETE", "kernels/nope"), "/kernels/{id}", "delete")["message"] == (
        "No GPU kernel nope on this server"
    )
    assert api("GET", "kernels/nope/events").code == 404


def test_a_tab_following_from_the_start_gets_events_live_until_ready(api: Api) -> None:
    # Given a launch that has only just been accepted
    kernel_id = json.loads(api("POST", "kernels", {"slice": "1x25%"}).body)["id"]
    chunks: list[bytes] = []
    # When a tab follows its events at once
    response = api(
        "GET", f"kernels/{kernel_id}/events", streaming_callback=chunks.append, request_timeout=120
    )
    # Then the stream carried them as they came and ended with ready
    text = b"".join(chunks).decode()
    assert response.code == 200
    assert text.startswith("event: requested\n")
    assert text.rstrip().split("\n\n")[-1].startswith("event: ready\n")
    assert len(chunks) >= 2  # flushed as each event happened, not in one piece at the end
    api("DELETE", f"kernels/{kernel_id}")


def test_stopping_a_kernel_while_it_starts_stops_it_once_it_has_started(
    api: Api, run: Callable[..., Any], jp_serverapp: Any
) -> None:
    service = jp_serverapp.web_app.settings["bf_jupyter_service"]
    kernel_id = json.loads(api("POST", "kernels", {"slice": "1x50%"}).body)["id"]
    start = service.kernels._records[kernel_id].task
    # When it is stopped before it is ready
    response = api("DELETE", f"kernels/{kernel_id}")
    # Then the stop is accepted, shown, and carried out when the start ends
    assert response.code == 202
    assert [k["state"] for k in json.loads(api("GET", "kernels").body)] == ["stopping"]
    run(start)
    assert json.loads(api("GET", "kernels").body) == []
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []
