"""Metric records: how a training process outside the kernel reports its curves.

A record is one line of JSON. On standard output it carries the prefix ``BF-METRICS `` so it can be
told apart from the program's own output (and hidden from it); in ``$BF_METRICS_FILE`` it is plain
JSON lines. Format version 1::

    BF-METRICS {"v":1,"kind":"begin","t":1764000000.0,"epochs":10,"steps":100,"batch_size":32}
    BF-METRICS {"v":1,"kind":"batch","t":1764000000.5,"epoch":0,"step":41,"metrics":{"loss":[0.91,0.88],"accuracy":[0.5,0.53]}}
    BF-METRICS {"v":1,"kind":"epoch","t":1764000003.1,"epoch":0,"metrics":{"loss":0.7,"val_loss":0.8}}
    BF-METRICS {"v":1,"kind":"gpu","t":1764000003.1,"used_mib":2150.0,"total_mib":8080.0}
    BF-METRICS {"v":1,"kind":"end","t":1764000030.0,"stopped":false}

``t`` is Unix time in seconds; ``epoch`` counts from 0; a ``batch`` record holds every batch since the
previous one (one array entry per batch, all arrays the same length, ``step`` is the index within
the epoch of the last of them); ``steps``, ``epochs``, ``batch_size``, ``total_mib`` may be null when
unknown; a value that is not finite is written as null. Readers ignore fields they do not know, so
fields may be added without a new version; anything else needs ``v`` 2.

Parsing never raises: a line that is not a valid record is ordinary output.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = [
    "FORMAT_VERSION",
    "METRICS_FILE_ENV",
    "RECORD_PREFIX",
    "STOP_FILE_ENV",
    "BatchRecord",
    "BeginRecord",
    "EndRecord",
    "EpochRecord",
    "GpuMemoryRecord",
    "MetricRecord",
    "RecordWriter",
    "encode_record",
    "parse_record",
    "split_record_line",
]

RECORD_PREFIX = "BF-METRICS "
FORMAT_VERSION = 1
# Where a batch process writes its records instead of standard output, when set.
METRICS_FILE_ENV = "BF_METRICS_FILE"
# A file whose appearance asks a batch process to stop training cleanly (the widget's Stop button).
STOP_FILE_ENV = "BF_STOP_FILE"
_MARK = RECORD_PREFIX + "{"


@dataclass(frozen=True)
class BeginRecord:
    time: float
    epochs: int | None
    steps: int | None
    batch_size: int | None


@dataclass(frozen=True)
class BatchRecord:
    time: float
    epoch: int
    step: int
    metrics: Mapping[str, tuple[float, ...]]


@dataclass(frozen=True)
class EpochRecord:
    time: float
    epoch: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class GpuMemoryRecord:
    time: float
    used_mib: float | None
    total_mib: float | None


@dataclass(frozen=True)
class EndRecord:
    time: float
    stopped: bool


MetricRecord = BeginRecord | BatchRecord | EpochRecord | GpuMemoryRecord | EndRecord


def encode_record(kind: str, fields: Mapping[str, Any], *, prefix: bool = True) -> str:
    """One record as a line (without the newline); non-finite numbers become null."""
    values = _finite(fields)
    if isinstance(fields.get("t"), float) and math.isfinite(fields["t"]):
        # A Unix time needs 13 digits for milliseconds; 7 would collapse a whole run to one instant.
        values["t"] = round(fields["t"], 3)
    body = json.dumps(
        {"v": FORMAT_VERSION, "kind": kind, **values},
        separators=(",", ":"),
        allow_nan=False,
    )
    return RECORD_PREFIX + body if prefix else body


def split_record_line(line: str) -> tuple[str, MetricRecord | None]:
    """Split an output line into (text to show, record). A record may follow text that was
    printed without a newline (a progress bar); a line that holds no valid record is all text."""
    at = line.find(_MARK)
    if at < 0:
        return line, None
    record = parse_record(line[at + len(RECORD_PREFIX) :])
    if record is None:
        return line, None
    return line[:at], record


def parse_record(text: str) -> MetricRecord | None:
    """Parse one record's JSON (with or without the prefix); None when it is not a valid v1 record."""
    text = text.strip()
    if text.startswith(RECORD_PREFIX):
        text = text[len(RECORD_PREFIX) :]
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
        return None
    try:
        return _build(data)
    except (TypeError, ValueError, KeyError, OverflowError):
        return None


def _build(data: dict[str, Any]) -> MetricRecord | None:
    build = _BUILDERS.get(str(data.get("kind")))
    return None if build is None else build(_number(data["t"]), data)


def _batch(when: float, data: dict[str, Any]) -> MetricRecord | None:
    metrics = {str(k): tuple(_number(v) for v in _list(vs)) for k, vs in data["metrics"].items()}
    if len({len(v) for v in metrics.values()}) > 1:
        return None
    return BatchRecord(when, _int(data["epoch"]), _int(data["step"]), metrics)


def _epoch(when: float, data: dict[str, Any]) -> MetricRecord:
    values = {str(k): _number(v) for k, v in data["metrics"].items()}
    return EpochRecord(when, _int(data["epoch"]), values)


def _begin(when: float, data: dict[str, Any]) -> MetricRecord:
    return BeginRecord(
        when,
        _optional_int(data.get("epochs")),
        _optional_int(data.get("steps")),
        _optional_int(data.get("batch_size")),
    )


def _gpu(when: float, data: dict[str, Any]) -> MetricRecord:
    used, total = data.get("used_mib"), data.get("total_mib")
    return GpuMemoryRecord(
        when, None if used is None else _number(used), None if total is None else _number(total)
    )


def _end(when: float, data: dict[str, Any]) -> MetricRecord:
    return EndRecord(when, bool(data.get("stopped", False)))


_BUILDERS: dict[str, Callable[[float, dict[str, Any]], MetricRecord | None]] = {
    "batch": _batch,
    "epoch": _epoch,
    "begin": _begin,
    "gpu": _gpu,
    "end": _end,
}


def _number(value: object) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _optional_int(value: object) -> int | None:
    return None if value is None else _int(value)


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"{value!r} is not a list")
    return value


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        # 7 significant digits: what a float32 metric holds, at half the length of repr().
        return float(f"{value:.7g}") if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass
class RecordWriter:
    """Writes records for one training run: batches are buffered and written together at most every
    ``batch_interval`` seconds (every value is kept), everything else at once.

    ``target`` returns the stream to write to at each write (so a redirected ``sys.stdout`` is
    honoured); ``prefix`` is False for a metrics file (plain JSON lines).
    """

    target: Callable[[], IO[str]]
    prefix: bool = True
    batch_interval: float = 0.5
    clock: Callable[[], float] = time.time
    _pending: dict[str, list[float]] = field(default_factory=dict)
    _pending_count: int = 0
    _epoch: int = 0
    _step: int = 0
    _next_flush: float = 0.0

    def begin(self, *, epochs: int | None, steps: int | None, batch_size: int | None) -> None:
        self._write("begin", {"epochs": epochs, "steps": steps, "batch_size": batch_size})
        self._next_flush = self.clock() + self.batch_interval

    def batch(self, epoch: int, step: int, metrics: Mapping[str, float]) -> None:
        """Buffer one batch's values (the hot path: a list append per metric)."""
        if epoch != self._epoch and self._pending_count:
            self.flush_batches()
        self._epoch, self._step = epoch, step
        pending = self._pending
        if metrics.keys() == pending.keys():
            for name, value in metrics.items():
                pending[name].append(value)
        else:  # a metric appeared or is missing: keep the arrays aligned with NaN
            for name in metrics.keys() - pending.keys():
                pending[name] = [math.nan] * self._pending_count
            for name, values in pending.items():
                values.append(metrics.get(name, math.nan))
        self._pending_count += 1
        if self.clock() >= self._next_flush:
            self.flush_batches()

    def flush_batches(self) -> None:
        if self._pending_count:
            self._write(
                "batch", {"epoch": self._epoch, "step": self._step, "metrics": self._pending}
            )
            self._pending = {name: [] for name in self._pending}
            self._pending_count = 0
        self._next_flush = self.clock() + self.batch_interval

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.flush_batches()
        self._write("epoch", {"epoch": epoch, "metrics": dict(metrics)})

    def gpu(self, used_mib: float | None, total_mib: float | None) -> None:
        self._write("gpu", {"used_mib": used_mib, "total_mib": total_mib})

    def end(self, *, stopped: bool) -> None:
        self.flush_batches()
        self._write("end", {"stopped": stopped})

    def _write(self, kind: str, fields: Mapping[str, Any]) -> None:
        stream = self.target()
        stream.write(encode_record(kind, {"t": self.clock(), **fields}, prefix=self.prefix) + "\n")
        stream.flush()
