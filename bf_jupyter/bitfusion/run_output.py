"""What ``bitfusion run`` prints while it wraps a command, read as events worth showing a person.

The client writes one line per step, ``[INFO] <RFC3339 time> <text>`` (``[ERROR]``/``[WARN]`` on
trouble). Its exact wording is not a published format, so this reads defensively: it recognises the
"Locked N GPUs" line that says the slice is held, and otherwise turns the last meaningful line into
the one-sentence reason a launch failed. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RunLine", "failure_reason", "read_run_line"]

_PREFIX = re.compile(
    r"^\s*\[(?P<level>[A-Za-z]+)\]\s*(?:\d{4}-\d\d-\d\d[T ][0-9:.]+(?:Z|[+-]\d\d:?\d\d)?\s*)?"
)
_LOCKED = re.compile(r"\bLocked\s+(?P<count>\d+)\s+GPUs?\b(?P<rest>[^,']*)")
_MAX_REASON = 300


@dataclass(frozen=True)
class RunLine:
    """One line of client output: ``level`` (INFO, ERROR, ... or '' when unprefixed), ``text``
    without the prefix, and ``locked_gpus`` when it is the line saying the GPUs are held."""

    level: str
    text: str
    locked_gpus: int | None = None

    @property
    def locked(self) -> bool:
        return self.locked_gpus is not None

    def summary(self) -> str:
        """For people: ``Locked 1 GPUs with partial memory 0.5`` (the config path left out)."""
        if self.locked_gpus is None:
            return self.text
        match = _LOCKED.search(self.text)
        return match.group(0).strip() if match else self.text


def read_run_line(line: str) -> RunLine:
    """Split the ``[LEVEL] time`` prefix off one output line and recognise the "Locked" line."""
    text = line.rstrip("\r\n")
    level = ""
    match = _PREFIX.match(text)
    if match:
        level = match["level"].upper()
        text = text[match.end() :]
    text = text.strip()
    locked = _LOCKED.search(text)
    return RunLine(level, text, int(locked["count"]) if locked else None)


def failure_reason(lines: Iterable[str], *, default: str = "no output") -> str:
    """The line that best says why a run failed: the last ERROR/FATAL line; else the command's own
    last line (not the client's INFO chatter around it: a traceback's final line names the
    exception); else the last line. Shortened to one readable sentence."""
    parsed = [read_run_line(line) for line in lines if line.strip()]
    if not parsed:
        return default
    errors = [p for p in parsed if p.level in {"ERROR", "FATAL", "PANIC"}]
    own = [p for p in parsed if p.level not in {"INFO", "DEBUG", "WARN", "WARNING"}]
    chosen = (errors or own or parsed)[-1].text
    if len(chosen) > _MAX_REASON:
        chosen = chosen[: _MAX_REASON - 1].rstrip() + "…"
    return chosen
