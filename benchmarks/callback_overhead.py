"""What the live curves cost: training overhead of LiveCurvesCallback, front-end message rate, and
the memory of the widget after a million batches. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/callback_overhead.py [--batches 1000] [--repeats 15]

1. Real ``fit()`` of a tiny Keras model (TensorFlow backend, one thread), ``verbose=0``, in one
   process: no callback vs the callback driving a widget vs the callback writing records, repeats
   in rotating order, median (and minimum: on a shared machine noise only ever adds) wall time of
   each. Widget messages are serialized as a kernel would (JSON, HMAC signature, binary buffers) so
   their cost counts.
2. The callback alone, driven through the Keras callback API for 100,000 batches: CPU microseconds
   per batch, i.e. the overhead at 1,000 batches/s whatever this machine's training speed.
3. A widget fed 10**6 batches directly (two metrics, an epoch every 1,000 batches) on a simulated
   clock of 1 ms per batch, so it sends as it would at 1,000 batches/s: CPU cost per batch with
   the updates, messages per simulated second, the size of the synced state and the memory the
   Python object holds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class MessageLog:
    """Every widget message, serialized the way ipykernel serializes it before sending; the
    updates (``comm_msg``) are counted with their time and size."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        from jupyter_client.session import Session

        self.session = Session(key=b"benchmark-key")
        self.clock = clock
        self.times: list[float] = []
        self.bytes = 0

    def install(self) -> None:
        import comm
        from comm.base_comm import BaseComm

        log = self

        class SerializingComm(BaseComm):  # type: ignore[misc]
            def publish_msg(
                self,
                msg_type: str,
                data: Any = None,
                metadata: Any = None,
                buffers: Any = None,
                **keys: Any,
            ) -> None:
                content = {"comm_id": self.comm_id, "data": data or {}, **keys}
                message = log.session.msg(msg_type, content, metadata=metadata or {})
                message["buffers"] = list(buffers or [])
                frames = log.session.serialize(message)
                if msg_type == "comm_msg":  # updates; comm_open happens once per widget
                    log.bytes += sum(len(f) for f in frames) + sum(
                        memoryview(b).nbytes for b in buffers or []
                    )
                    log.times.append(log.clock())

        comm.create_comm = SerializingComm

    def busiest_second(self) -> int:
        times = self.times
        best, start = 0, 0
        for end, t in enumerate(times):
            while times[start] <= t - 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best


def tiny_model_fit(batches: int, repeats: int) -> None:
    import tensorflow as tf

    # One thread each: less scheduling noise, and a fair comparison on a shared machine.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import numpy as np

    from bf_jupyter.notebook.curve_widget import LiveCurves
    from bf_jupyter.notebook.keras_callback import LiveCurvesCallback

    log = MessageLog()
    log.install()
    rng = np.random.default_rng(0)
    x = rng.random((batches * 8, 4), dtype="float32")
    y = (x.sum(axis=1) > 2).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", metrics=["mae"])
    devnull = Path(os.devnull).open("w")  # noqa: SIM115 - closed below

    class NoOp(keras.callbacks.Callback):  # type: ignore[misc]
        """Does nothing per batch, but like any such callback turns off Keras' async dispatch."""

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            pass

    variants: dict[str, Any] = {
        "no callback": list,
        "no-op callback": lambda: [NoOp()],
        "widget sink": lambda: [LiveCurvesCallback(widget=LiveCurves())],
        "records sink": lambda: [LiveCurvesCallback(sink="records")],
    }
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # trace and warm up
    wall: dict[str, list[float]] = {name: [] for name in variants}
    widget_seconds, widget_messages = 0.0, 0
    stdout = sys.stdout
    names = list(variants)
    for repeat in range(repeats):
        turn = repeat % len(names)
        for name in names[turn:] + names[:turn]:  # rotate the order: drift hits all alike
            callbacks = variants[name]()
            sent_before = len(log.times)
            sys.stdout = devnull if name == "records sink" else stdout
            try:
                start = time.perf_counter()
                model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=callbacks)
                elapsed = time.perf_counter() - start
            finally:
                sys.stdout = stdout
            wall[name].append(elapsed)
            if name == "widget sink":
                widget_seconds += elapsed
                widget_messages += len(log.times) - sent_before
    devnull.close()
    print(
        f"1. fit() of a tiny Dense model, {batches} batches of 8, {repeats} repeats in rotating order"
    )
    base, fastest = statistics.median(wall["no callback"]), min(wall["no callback"])
    print(
        f"   no callback      median {base * 1000:7.1f} ms ({batches / base:,.0f} batches/s), "
        f"min {fastest * 1000:7.1f} ms ({batches / fastest:,.0f} batches/s)"
    )
    # Any callback with a batch hook makes Keras call hooks in line instead of on a thread pool;
    # the no-op callback pays that too, so it is the fair baseline for our callback's own cost.
    noop, noop_min = statistics.median(wall["no-op callback"]), min(wall["no-op callback"])
    for name in ("no-op callback", "widget sink", "records sink"):
        median, least = statistics.median(wall[name]), min(wall[name])
        if name == "no-op callback":
            versus = f"vs no callback: median {100 * (median - base) / base:+.2f} %"
        else:
            versus = (
                f"vs no-op: median {100 * (median - noop) / noop:+.2f} %, "
                f"min {100 * (least - noop_min) / noop_min:+.2f} %"
            )
        print(
            f"   {name:<16} median {median * 1000:7.1f} ms, min {least * 1000:7.1f} ms  ({versus})"
        )
    print(
        f"   widget messages: {widget_messages} in {widget_seconds:.2f} s of training = "
        f"{widget_messages / widget_seconds:.1f}/s, busiest second {log.busiest_second()}"
    )


def callback_alone(batches: int = 100_000) -> None:
    import keras

    from bf_jupyter.notebook.curve_widget import LiveCurves
    from bf_jupyter.notebook.keras_callback import LiveCurvesCallback

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    logs = {"loss": 0.5, "mae": 0.25}
    print(f"2. the callback alone, {batches:,} batches through the Keras callback API")
    for name, callback in (
        ("widget sink", LiveCurvesCallback(widget=LiveCurves())),
        ("records sink", LiveCurvesCallback(sink="records")),
    ):
        callback.set_model(model)
        callback.set_params({"epochs": 1, "steps": batches, "verbose": 0})
        stdout, sys.stdout = sys.stdout, Path(os.devnull).open("w")  # noqa: SIM115
        try:
            callback.on_train_begin()
            callback.on_epoch_begin(0)
            start = time.process_time()
            for step in range(batches):
                callback.on_train_batch_begin(step)
                callback.on_train_batch_end(step, logs)
            elapsed = time.process_time() - start
            callback.on_epoch_end(0, {**logs, "val_loss": 0.6})
            callback.on_train_end()
        finally:
            sys.stdout.close()
            sys.stdout = stdout
        per_batch = elapsed / batches
        print(
            f"   {name:<14} {per_batch * 1e6:6.2f} µs per batch = {100 * per_batch / 1e-3:.2f} % of a 1 ms batch "
            f"(overhead at 1,000 batches/s)"
        )


def million_batches(batches: int = 1_000_000) -> None:
    from bf_jupyter.notebook.curve_widget import LiveCurves

    simulated = [0.0]
    log = MessageLog(clock=lambda: simulated[0])
    log.install()

    def feed(add_batch: Any, add_epoch: Any) -> float:
        start = time.process_time()
        for i in range(batches):
            simulated[0] += 0.001
            epoch, step = divmod(i, 1000)
            add_batch(epoch, step, {"loss": 1.0 / (1 + i / 1000), "accuracy": i / batches})
            if step == 999:
                add_epoch(epoch, {"loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.7})
        return time.process_time() - start

    def fed_widget() -> tuple[LiveCurves, float]:
        simulated[0] = 0.0
        widget = LiveCurves(clock=lambda: simulated[0])
        widget.begin(epochs=batches // 1000, steps=1000, batch_size=32)
        elapsed = feed(widget.add_batch, widget.add_epoch)
        widget.end()
        return widget, elapsed

    loop_only = feed(lambda *a: None, lambda *a: None)  # the feeding loop's own cost
    widget, elapsed = fed_widget()
    elapsed -= loop_only
    messages, message_bytes, busiest = len(log.times), log.bytes, log.busiest_second()
    del widget
    tracemalloc.start()  # a second run for memory: tracing slows every allocation
    widget, _ = fed_widget()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    state = sum(len(c["x"]) + len(c["y"]) for c in widget.curves.values())
    points = max(c["points"] for c in widget.curves.values())
    per_batch = elapsed / batches
    print(
        f"3. a widget fed {batches:,} batches (2 metrics; an epoch every 1,000) on a simulated 1 ms/batch clock"
    )
    print(
        f"   widget cost     {per_batch * 1e6:.2f} µs per batch, updates included = "
        f"{100 * per_batch / 1e-3:.2f} % at 1,000 batches/s"
    )
    print(
        f"   messages        {messages:,} over {simulated[0]:,.0f} simulated s = "
        f"{messages / simulated[0]:.2f}/s, busiest second {busiest}, "
        f"{message_bytes / messages / 1024:.1f} KiB each"
    )
    print(
        f"   synced state    {state / 1024:.1f} KiB of curve buffers, at most {points} points per series"
    )
    print(
        f"   Python object   {widget.data.nbytes() / 2**20:.1f} MiB of values (every one kept, 8 B each); "
        f"traced memory now {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batches", type=int, default=1000, help="batches per fit() (default 1000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=15, help="repeats of each variant (default 15)"
    )
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    tiny_model_fit(args.batches, args.repeats)
    callback_alone()
    million_batches()


if __name__ == "__main__":
    main()
