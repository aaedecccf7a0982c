"""The magic inside a real kernel (jupyter_client): loaded by ``--ext bf_jupyter``, interrupted
runs stop and release their slice, live curves appear, and Stop reaches a busy kernel."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from jupyter_client.manager import start_new_kernel

from bf_jupyter.notebook import EXTENSION_ARGS
from bf_jupyter.notebook.metric_records import encode_record

if TYPE_CHECKING:
    from tests.integration.notebook.conftest import Pool

TIMEOUT = 60


@dataclass
class Reply:
    """What a cell produced on IOPub, and its execute reply."""

    stdout: str = ""
    stderr: str = ""
    error: list[str] = field(default_factory=list)
    comm_opens: list[dict[str, Any]] = field(default_factory=list)
    comm_updates: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""


@dataclass
class Kernel:
    manager: Any
    client: Any

    def execute(self, code: str) -> str:
        return str(self.client.execute(code))

    def collect(self, msg_id: str, *, until: Any = None) -> Reply:
        """IOPub messages of ``msg_id`` until it is idle (or ``until(reply)`` is true)."""
        reply = Reply()
        while True:
            msg = self.client.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    reply.stdout += content["text"]
                else:
                    reply.stderr += content["text"]
            elif kind == "error":
                reply.error = content["traceback"]
            elif kind == "comm_open":
                reply.comm_opens.append(content)
            elif kind == "comm_msg":
                reply.comm_updates.append(content["data"])
            elif kind == "status" and content["execution_state"] == "idle":
                reply.status = "idle"
                return reply
            if until is not None and until(reply):
                return reply

    def run(self, code: str) -> Reply:
        return self.collect(self.execute(code))


@pytest.fixture
def kernel(pool: Pool) -> Iterator[Kernel]:
    """A kernel started the way our kernelspecs start one: ``--ext bf_jupyter``."""
    manager, client = start_new_kernel(
        kernel_name="python3", extra_arguments=list(EXTENSION_ARGS), startup_timeout=TIMEOUT
    )
    try:
        yield Kernel(manager, client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_a_kernel_started_with_the_extension_has_the_magic(kernel: Kernel) -> None:
    reply = kernel.run("%bitfusion")

    assert reply.stdout.startswith("%bitfusion — run work on fractional GPU slices")
    assert not reply.error


@pytest.mark.parametrize("ignores_sigint", [False, True], ids=["sigint", "sigterm"])
def test_interrupting_the_kernel_stops_the_command_and_releases_the_slice(
    kernel: Kernel, pool: Pool, script: Any, tmp_path: Path, ignores_sigint: bool
) -> None:
    pid_file = tmp_path / "pid"
    program = script(
        "long.py",
        f"""
        import os, signal, time
        if {ignores_sigint}:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print("started", flush=True)
        time.sleep(120)
        """,
    )
    kernel.run("%config BitfusionMagics.stop_grace = 1.0")
    msg_id = kernel.execute(f"%bitfusion run 1x50% -- {sys.executable} {program}")
    kernel.collect(msg_id, until=lambda reply: "started" in reply.stdout)
    assert pool.leases() == 1

    kernel.manager.interrupt_kernel()
    reply = kernel.collect(msg_id)

    assert len(reply.error) == 1
    assert "%bitfusion run: interrupted: stopped" in reply.error[0]
    assert "the 1x50% slice is released" in reply.error[0]
    assert _gone(int(pid_file.read_text()))
    assert pool.leases() == 0
    assert kernel.run("print('kernel still fine')").stdout == "kernel still fine\n"


def test_metric_records_of_a_run_become_a_live_curve_widget(
    kernel: Kernel, pool: Pool, script: Any
) -> None:
    lines = [
        encode_record("begin", {"t": 1.0, "epochs": 1, "steps": 3, "batch_size": 2}),
        encode_record(
            "batch", {"t": 2.0, "epoch": 0, "step": 2, "metrics": {"loss": [0.9, 0.8, 0.7]}}
        ),
        encode_record("epoch", {"t": 3.0, "epoch": 0, "metrics": {"loss": 0.7, "val_loss": 0.75}}),
        encode_record("end", {"t": 4.0, "stopped": False}),
    ]
    program = script("records.py", "".join(f"print({line!r})\n" for line in lines))

    reply = kernel.run(f"%bitfusion run 1 -- {sys.executable} {program}")

    assert not reply.error
    assert "BF-METRICS" not in reply.stdout
    opened = [c for c in reply.comm_opens if c["data"]["state"].get("_model_name") == "AnyModel"]
    assert len(opened) == 1
    states = [u["state"] for u in reply.comm_updates if u.get("method") == "update"]
    assert states[-1]["status"] == "finished"
    curve_updates = [u for u in reply.comm_updates if "curves" in u.get("state", {})]
    assert ["curves", "batch:loss", "y"] in curve_updates[-1]["buffer_paths"]
    assert set(curve_updates[-1]["state"]["curves"]) == {
        "batch:loss",
        "epoch:loss",
        "epoch:val_loss",
    }


def test_stop_reaches_a_kernel_busy_in_a_cell_and_queued_cells_still_run_in_order(
    kernel: Kernel,
) -> None:
    code = """
import time
from bf_jupyter.notebook.curve_widget import LiveCurves
widget = LiveCurves(title="busy")
widget.on_stop(lambda: print("stop handler ran", flush=True))
display(widget)
widget.begin(epochs=1, steps=10**6)
step = 0
deadline = time.monotonic() + 30
while not widget.stop_requested and time.monotonic() < deadline:
    widget.add_batch(0, step, {"loss": 1.0 / (step + 1)})
    time.sleep(0.001)
    step += 1
widget.end()
print("left the loop:", widget.stop_requested, widget.status)
"""
    busy = kernel.execute(code)
    started = kernel.collect(
        busy,
        until=lambda reply: any(
            c["data"]["state"].get("_model_name") == "AnyModel" for c in reply.comm_opens
        ),
    )
    comm_id = next(
        c["comm_id"]
        for c in started.comm_opens
        if c["data"]["state"].get("_model_name") == "AnyModel"
    )
    queued = kernel.execute("print('queued cell ran')")

    _stop_click(kernel, comm_id)
    finished = kernel.collect(busy)
    after = kernel.collect(queued)

    assert "stop handler ran" in finished.stdout
    assert "left the loop: True stopped" in finished.stdout
    assert after.stdout == "queued cell ran\n"
    replies = _shell_replies_to(kernel, {busy, queued})
    assert [r["parent_header"]["msg_id"] for r in replies] == [busy, queued]
    assert all(r["content"]["status"] == "ok" for r in replies)


def _shell_replies_to(kernel: Kernel, msg_ids: set[str]) -> list[dict[str, Any]]:
    """The shell replies to ``msg_ids``, in the order the kernel sent them; replies to earlier
    requests still queued on the channel are skipped."""
    replies: list[dict[str, Any]] = []
    while len(replies) < len(msg_ids):
        reply = kernel.client.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") in msg_ids:
            replies.append(reply)
    return replies


def _stop_click(kernel: Kernel, comm_id: str) -> None:
    """What the widget's Stop button sends."""
    kernel.client.shell_channel.send(
        kernel.client.session.msg(
            "comm_msg",
            {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "stop"}}},
        )
    )


def test_stop_during_a_run_ends_the_commands_training_cleanly(
    kernel: Kernel, pool: Pool, script: Any
) -> None:
    program = script(
        "trainer.py",
        """
        import time
        from bf_jupyter.notebook.training_reporter import TrainingReporter

        asked = []
        reporter = TrainingReporter(stop=lambda: asked.append(True), sink="records")
        reporter.train_begin(epochs=1, steps=10**6, batch_size=4)
        reporter.epoch_begin(0)
        step = 0
        while not asked and step < 10**6:
            reporter.batch_end(step, {"loss": 1.0 / (step + 1)})
            time.sleep(0.002)
            step += 1
        reporter.train_end()
        print("training stopped cleanly after", step, "batches", flush=True)
        """,
    )
    msg_id = kernel.execute(f"%bitfusion run 1x50% -- {sys.executable} {program}")
    started = kernel.collect(
        msg_id,
        until=lambda r: any(u.get("state", {}).get("stoppable") for u in r.comm_updates),
    )
    comm_id = next(
        c["comm_id"]
        for c in started.comm_opens
        if c["data"]["state"].get("_model_name") == "AnyModel"
    )

    _stop_click(kernel, comm_id)
    reply = kernel.collect(msg_id)

    assert not reply.error
    assert "training stopped cleanly after" in reply.stdout
    states = [u["state"] for u in reply.comm_updates if "status" in u.get("state", {})]
    assert states[-1]["status"] == "stopped"
    assert pool.leases() == 0
