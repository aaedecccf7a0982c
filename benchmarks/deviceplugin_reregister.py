"""How fast ``bf-jupyter device-plugin`` registers again after the kubelet restarts.

Runs the real command as a process against the test kubelet (real v1beta1 gRPC over unix sockets)
and a scriptable Bitfusion client, restarts the kubelet the way a real one does (kubelet.sock
recreated, plugin sockets wiped) several times, at random points of the plugin's polling cycle,
and prints, per --kubelet-check-interval, the
median / min / max time from the new kubelet.sock to (a) the plugin's Register call and (b) its
device list arriving. The kubelet asks for re-registration within 5 s.

    .venv/bin/python benchmarks/deviceplugin_reregister.py [--restarts 7] [--intervals 0.5 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.support

from tests.support.fake_bitfusion import FakeBitfusionClient
from tests.support.fake_kubelet import FakeKubelet

RESOURCE = "bitfusion.io/gpu"


async def measure(
    interval: float, restarts: int, client: FakeBitfusionClient
) -> list[tuple[float, float]]:
    """(to Register, to device list) in milliseconds, one pair per kubelet restart."""
    samples: list[tuple[float, float]] = []
    phases = random.Random(1)
    async with FakeKubelet() as kubelet:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "bf_jupyter", "device-plugin", "--log-level", "warning"],
            *["--plugin-dir", str(kubelet.plugin_dir), "--kubelet-check-interval", str(interval)],
            env=client.env(),
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            await kubelet.wait_registered(RESOURCE, timeout=60)
            for count in range(2, restarts + 2):
                # A real restart lands anywhere in the plugin's polling cycle, not right after it.
                await asyncio.sleep(phases.uniform(0, interval))
                await kubelet.restart(remove_plugin_sockets=True)
                recreated = time.monotonic()
                view = await kubelet.wait_registered(RESOURCE, count=count, timeout=30)
                assert view.updated_at is not None
                samples.append(
                    (
                        (view.registration.received_at - recreated) * 1000,
                        (view.updated_at - recreated) * 1000,
                    )
                )
        finally:
            process.terminate()
            await process.wait()
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restarts", type=int, default=7)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.5, 0.1])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bf-bench-") as scratch:
        client = FakeBitfusionClient(Path(scratch), servers=[4])
        print(
            f"re-registration after a kubelet restart, {args.restarts} restarts each, 400 devices"
        )
        for interval in args.intervals:
            samples = await measure(interval, args.restarts, client)
            for label, values in (
                ("Register", [s[0] for s in samples]),
                ("device list", [s[1] for s in samples]),
            ):
                print(
                    f"check interval {interval:g} s: to {label:<11} median {statistics.median(values):7.1f} ms"
                    f"  min {min(values):7.1f} ms  max {max(values):7.1f} ms"
                )


if __name__ == "__main__":
    asyncio.run(main())
