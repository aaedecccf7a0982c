"""The widget updates in place, at a bounded rate, with binary curve data, and offers Stop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bf_jupyter.notebook.curve_widget import LiveCurves, SendThrottle

if TYPE_CHECKING:
    from tests.unit.notebook.conftest import CommRecorder, FakeClock


def _train(widget: LiveCurves, clock: FakeClock, *, batches: int, seconds_per_batch: float) -> None:
    widget.begin(epochs=1, steps=batches, batch_size=8)
    for step in range(batches):
        clock.advance(seconds_per_batch)
        widget.add_batch(0, step, {"loss": 1.0 / (step + 1), "accuracy": step / batches})


def test_updates_stay_at_or_below_ten_messages_per_second(
    comm_recorder: CommRecorder, clock: FakeClock
) -> None:
    widget = LiveCurves(clock=clock)
    widget.begin(epochs=1, steps=20_000, batch_size=8)
    sent_at: list[float] = []

    for step in range(20_000):  # 2,000 batches/s for 10 s of fake time
        clock.advance(0.0005)
        before = len(comm_recorder.updates())
        widget.add_batch(0, step, {"loss": 1.0 / (step + 1)})
        sent_at += [clock.now] * (len(comm_recorder.updates()) - before)

    assert len(sent_at) >= 50, "curves keep moving"
    times = np.array(sent_at)
    busiest_second = max(np.count_nonzero((times >= t) & (times < t + 1.0)) for t in times)
    assert busiest_second <= 10


def test_the_rate_also_bounds_a_burst_of_records_fed_at_once(
    comm_recorder: CommRecorder, clock: FakeClock
) -> None:
    widget = LiveCurves(clock=clock)
    widget.begin()

    for step in range(1000):  # a backlog of records arriving together: no time passes
        widget.add_batches(0, step, {"loss": [0.5]})

    assert len(comm_recorder.updates()) <= 2


def test_the_last_values_always_reach_the_front_end(
    comm_recorder: CommRecorder, clock: FakeClock
) -> None:
    widget = LiveCurves(clock=clock)
    _train(widget, clock, batches=7, seconds_per_batch=0.001)  # too fast for a timed update

    widget.end()

    last = comm_recorder.updates()[-1].data["state"]
    assert last["status"] == "finished"
    assert widget.curves["batch:loss"]["count"] == 7
    assert widget.progress["step"] == 7


def test_curve_data_travels_as_binary_buffers_not_json_lists(
    comm_recorder: CommRecorder, clock: FakeClock
) -> None:
    widget = LiveCurves(clock=clock)
    _train(widget, clock, batches=3000, seconds_per_batch=0.001)
    widget.end()

    message = next(m for m in reversed(comm_recorder.updates()) if "curves" in m.data["state"])
    paths = message.data["buffer_paths"]
    assert ["curves", "batch:loss", "y"] in paths and ["curves", "batch:loss", "x"] in paths
    assert len(message.buffers) == len(paths)
    loss = message.data["state"]["curves"]["batch:loss"]
    assert "x" not in loss and "y" not in loss  # replaced by buffers
    y = np.frombuffer(message.buffers[paths.index(["curves", "batch:loss", "y"])], "<f4")
    assert len(y) <= 2000 and y.max() == 1.0


def test_each_update_is_a_single_message_for_all_changed_traits(
    comm_recorder: CommRecorder, clock: FakeClock
) -> None:
    widget = LiveCurves(clock=clock)
    widget.begin(epochs=1, steps=10)
    before = len(comm_recorder.updates())
    clock.advance(1)

    widget.add_batch(0, 0, {"loss": 1.0})

    new = comm_recorder.updates()[before:]
    assert len(new) == 1
    assert {"progress", "curves"} <= set(new[0].data["state"])


def test_the_python_object_keeps_every_value_while_the_state_is_downsampled(
    clock: FakeClock,
) -> None:
    widget = LiveCurves(clock=clock)

    _train(widget, clock, batches=50_000, seconds_per_batch=0.0001)
    widget.end()

    assert len(widget.data.series["batch:loss"]) == 50_000
    assert widget.curves["batch:loss"]["points"] <= 2000


def test_throttle_stretches_the_interval_for_large_payloads(clock: FakeClock) -> None:
    throttle = SendThrottle(min_interval=0.1, bytes_per_second=1000, clock=clock)

    throttle.sent(500)
    clock.advance(0.3)
    assert not throttle.due()
    clock.advance(0.2)
    assert throttle.due()


def test_stop_calls_the_handler_once_and_reports_stopping_then_stopped(clock: FakeClock) -> None:
    widget = LiveCurves(clock=clock)
    calls: list[str] = []
    widget.on_stop(lambda: calls.append("stop"))
    widget.begin()

    widget._on_front_end_message(widget, {"event": "stop"}, [])
    widget._on_front_end_message(widget, {"event": "stop"}, [])

    assert calls == ["stop"]
    assert widget.stop_requested and widget.status == "stopping"
    widget.end()
    assert widget.status == "stopped"


def test_without_a_kernel_the_stop_button_is_not_offered(clock: FakeClock) -> None:
    widget = LiveCurves(clock=clock)
    widget.on_stop(lambda: None)

    widget.begin()

    assert widget.status == "running"
    assert not widget.stoppable  # a click could not reach a busy kernel without the pump


def test_a_failed_run_ends_failed(clock: FakeClock) -> None:
    widget = LiveCurves(clock=clock)
    widget.begin()

    widget.end(failed=True)

    assert widget.status == "failed"
