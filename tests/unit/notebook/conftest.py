"""Fixtures for the kernel-side unit tests: a comm that records what a widget sends, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm


@dataclass
class SentMessage:
    msg_type: str
    data: dict[str, Any]
    buffers: list[Any]


@dataclass
class CommRecorder:
    """Every message widgets publish while the fixture is active (no kernel needed)."""

    messages: list[SentMessage] = field(default_factory=list)

    def updates(self) -> list[SentMessage]:
        return [
            m
            for m in self.messages
            if m.msg_type == "comm_msg" and m.data.get("method") == "update"
        ]


@pytest.fixture
def comm_recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[CommRecorder]:
    recorder = CommRecorder()

    class RecordingComm(BaseComm):
        def publish_msg(
            self,
            msg_type: str,
            data: dict[str, Any] | None = None,
            metadata: dict[str, Any] | None = None,
            buffers: list[Any] | None = None,
            **keys: Any,
        ) -> None:
            recorder.messages.append(SentMessage(msg_type, data or {}, list(buffers or [])))

    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    yield recorder


class FakeClock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
