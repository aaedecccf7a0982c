"""The metric record format: written by batch processes, read back into curves."""

from __future__ import annotations

import io
import json
import math
from typing import TYPE_CHECKING

import pytest

from bf_jupyter.notebook.metric_records import (
    RECORD_PREFIX,
    BatchRecord,
    BeginRecord,
    EndRecord,
    EpochRecord,
    GpuMemoryRecord,
    RecordWriter,
    encode_record,
    parse_record,
    split_record_line,
)

if TYPE_CHECKING:
    from tests.unit.notebook.conftest import FakeClock


def test_a_record_line_is_the_prefix_and_versioned_json() -> None:
    line = encode_record("epoch", {"t": 1.5, "epoch": 0, "metrics": {"loss": 0.25}})

    assert line.startswith(RECORD_PREFIX)
    assert json.loads(line[len(RECORD_PREFIX) :]) == {
        "v": 1,
        "kind": "epoch",
        "t": 1.5,
        "epoch": 0,
        "metrics": {"loss": 0.25},
    }


def test_every_kind_reads_back_as_written() -> None:
    lines = [
        encode_record("begin", {"t": 1.0, "epochs": 3, "steps": 10, "batch_size": 32}),
        encode_record("batch", {"t": 2.0, "epoch": 0, "step": 1, "metrics": {"loss": [0.5, 0.4]}}),
        encode_record("epoch", {"t": 3.0, "epoch": 0, "metrics": {"val_loss": 0.3}}),
        encode_record("gpu", {"t": 4.0, "used_mib": 100.0, "total_mib": None}),
        encode_record("end", {"t": 5.0, "stopped": True}),
    ]

    records = [split_record_line(line)[1] for line in lines]

    assert records == [
        BeginRecord(1.0, 3, 10, 32),
        BatchRecord(2.0, 0, 1, {"loss": (0.5, 0.4)}),
        EpochRecord(3.0, 0, {"val_loss": 0.3}),
        GpuMemoryRecord(4.0, 100.0, None),
        EndRecord(5.0, True),
    ]


def test_values_that_are_not_finite_travel_as_null_and_come_back_as_nan() -> None:
    line = encode_record(
        "batch", {"t": 1.0, "epoch": 0, "step": 0, "metrics": {"loss": [math.nan, math.inf]}}
    )

    assert "NaN" not in line and "Infinity" not in line
    record = split_record_line(line)[1]
    assert isinstance(record, BatchRecord)
    assert all(math.isnan(v) for v in record.metrics["loss"])


def test_a_record_after_progress_text_keeps_the_text() -> None:
    line = "3/10 [====>....] " + encode_record("end", {"t": 1.0, "stopped": False})

    text, record = split_record_line(line)

    assert text == "3/10 [====>....] "
    assert record == EndRecord(1.0, False)


@pytest.mark.parametrize(
    "line",
    [
        "plain output",
        "BF-METRICS {not json",
        'BF-METRICS {"v":2,"kind":"end","t":1}',
        'BF-METRICS {"v":1,"kind":"mystery","t":1}',
        'BF-METRICS {"v":1,"kind":"batch","t":1,"epoch":0,"step":0,"metrics":{"a":[1],"b":[1,2]}}',
        'BF-METRICS {"v":1,"kind":"epoch","t":"soon","epoch":0,"metrics":{}}',
        'BF-METRICS {"v":1,"kind":"epoch","t":1,"epoch":true,"metrics":{}}',
        'BF-METRICS ["v",1]',
    ],
)
def test_anything_that_is_not_a_valid_v1_record_is_ordinary_output(line: str) -> None:
    assert split_record_line(line) == (line, None)


def test_plain_json_lines_from_a_metrics_file_parse_too() -> None:
    assert parse_record('{"v":1,"kind":"end","t":2,"stopped":false}') == EndRecord(2.0, False)


def test_writer_buffers_batches_and_keeps_every_value(clock: FakeClock) -> None:
    out = io.StringIO()
    writer = RecordWriter(target=lambda: out, clock=clock, batch_interval=0.5)
    writer.begin(epochs=1, steps=5, batch_size=8)

    for step in range(5):
        writer.batch(0, step, {"loss": 1.0 / (step + 1)})
        clock.advance(0.2)
    writer.epoch(0, {"loss": 0.2, "val_loss": 0.3})
    writer.end(stopped=False)

    records = [split_record_line(line)[1] for line in out.getvalue().splitlines()]
    batches = [r for r in records if isinstance(r, BatchRecord)]
    assert len(batches) == 2  # flushed once on time, once before the epoch record
    assert [v for b in batches for v in b.metrics["loss"]] == pytest.approx(
        [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]
    )
    assert [b.step for b in batches] == [3, 4]
    assert isinstance(records[-2], EpochRecord) and isinstance(records[-1], EndRecord)


def test_writer_fills_a_metric_missing_from_some_batches_with_nan(clock: FakeClock) -> None:
    out = io.StringIO()
    writer = RecordWriter(target=lambda: out, clock=clock)
    writer.begin(epochs=None, steps=None, batch_size=None)

    writer.batch(0, 0, {"loss": 1.0})
    writer.batch(0, 1, {"loss": 0.9, "lr": 0.1})
    writer.flush_batches()

    record = split_record_line(out.getvalue().splitlines()[1])[1]
    assert isinstance(record, BatchRecord)
    assert record.metrics["loss"] == (1.0, 0.9)
    assert math.isnan(record.metrics["lr"][0]) and record.metrics["lr"][1] == 0.1


def test_writer_for_a_metrics_file_writes_plain_json_lines(clock: FakeClock) -> None:
    out = io.StringIO()
    writer = RecordWriter(target=lambda: out, prefix=False, clock=clock)

    writer.end(stopped=True)

    assert json.loads(out.getvalue()) == {"v": 1, "kind": "end", "t": clock.now, "stopped": True}


def test_record_times_keep_millisecond_precision_of_unix_time() -> None:
    # Given two records a fraction of a second apart at a real Unix time
    first = split_record_line(encode_record("begin", {"t": 1764000000.125, "epochs": 1}))[1]
    second = split_record_line(encode_record("end", {"t": 1764000000.875, "stopped": False}))[1]
    # Then they do not collapse to the same instant
    assert first is not None and second is not None
    assert second.time - first.time == pytest.approx(0.75)
