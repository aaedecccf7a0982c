"""``bf-jupyter device-plugin``: advertise the real Bitfusion pool to this node's kubelet.

Runs in the device-plugin DaemonSet with the kubelet's device-plugins directory mounted. This
module only reads flags, sets up logging and signals, and hands over to the supervisor; grpc is
imported inside ``run`` so ``bf-jupyter --help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bf_jupyter.contract import QUOTA_RESOURCE, UNITS_PER_GPU

if TYPE_CHECKING:
    from bf_jupyter.cluster.deviceplugin.plugin import BitfusionDevicePlugin

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Run the kubelet device plugin that advertises the Bitfusion pool as bitfusion.io/gpu."

_DESCRIPTION = """\
Run the kubelet device plugin (API v1beta1) that advertises the Bitfusion pool as an extended
resource, by default bitfusion.io/gpu: one device per quota unit, units-per-GPU × the GPUs that
'bitfusion list_gpus' reports (1 unit = 1 % of one GPU, the unit the admission webhook writes
into pods). The client is found as everywhere else: $BF_BITFUSION_BIN, else 'bitfusion' on PATH,
else bitfusion-sim.

It re-reads the pool every --health-interval seconds and updates the kubelet only when capacity or
health changes; devices turn Unhealthy while 'bitfusion health' or 'list_gpus' fails and Healthy
again when they recover. It registers again when the kubelet restarts (kubelet.sock recreated)
and retries a failed start with backoff. SIGHUP restarts it; SIGTERM or SIGINT stops it and
removes its socket."""

_EPILOG = """\
example (what the DaemonSet runs):
  bf-jupyter device-plugin --plugin-dir /var/lib/kubelet/device-plugins --units-per-gpu 100"""

DEFAULT_PLUGIN_DIR = Path("/var/lib/kubelet/device-plugins")
_LOG_LEVELS = ("debug", "info", "warning", "error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = _DESCRIPTION
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--plugin-dir",
        type=Path,
        default=DEFAULT_PLUGIN_DIR,
        metavar="DIR",
        help="the kubelet's device-plugins directory, holding kubelet.sock (default: %(default)s)",
    )
    parser.add_argument(
        "--resource-name",
        default=QUOTA_RESOURCE,
        metavar="NAME",
        help="the extended resource to advertise, <domain>/<name> (default: %(default)s)",
    )
    parser.add_argument(
        "--units-per-gpu",
        type=_whole_number(1, 1000),
        default=UNITS_PER_GPU,
        metavar="N",
        help="devices per GPU of the pool; keep 100 so quota units mean percent of a GPU (default: %(default)s)",
    )
    parser.add_argument(
        "--health-interval",
        type=_seconds(0.01, 3600),
        default=10.0,
        metavar="SECONDS",
        help="how often to re-read list_gpus and health (default: %(default)g)",
    )
    parser.add_argument(
        "--probe-timeout",
        type=_seconds(0.1, 600),
        default=15.0,
        metavar="SECONDS",
        help="longest wait for one client command before the pool counts as unhealthy (default: %(default)g)",
    )
    parser.add_argument(
        "--kubelet-check-interval",
        type=_seconds(0.01, 5),
        default=0.5,
        metavar="SECONDS",
        help="how often to check whether kubelet.sock was recreated (default: %(default)g)",
    )
    parser.add_argument(
        "--max-retry-delay",
        type=_seconds(0.1, 3600),
        default=30.0,
        metavar="SECONDS",
        help="longest wait between failed starts; delays double from 1 s up to this (default: %(default)g)",
    )
    parser.add_argument(
        "--log-level", choices=_LOG_LEVELS, default="info", help="(default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a clean stop, 2 for settings that cannot work."""
    from bf_jupyter.cluster.deviceplugin.plugin import BitfusionDevicePlugin, PluginSettings

    prog = "bf-jupyter device-plugin"
    plugin_dir: Path = args.plugin_dir
    if not plugin_dir.is_dir():
        return _fail(
            prog,
            f"--plugin-dir {plugin_dir} is not a directory: mount the kubelet's device-plugins directory there",
        )
    try:
        settings = PluginSettings(
            plugin_dir=plugin_dir.absolute(),
            resource_name=args.resource_name,
            units_per_gpu=args.units_per_gpu,
            health_interval=args.health_interval,
            probe_timeout=args.probe_timeout,
        )
    except ValueError as error:
        return _fail(prog, str(error))
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    plugin = BitfusionDevicePlugin(settings)
    asyncio.run(
        _serve_until_stopped(
            plugin,
            check_interval=args.kubelet_check_interval,
            max_retry_delay=args.max_retry_delay,
        )
    )
    return 0


async def _serve_until_stopped(
    plugin: BitfusionDevicePlugin, *, check_interval: float, max_retry_delay: float
) -> None:
    from bf_jupyter.cluster.deviceplugin.supervisor import Backoff, Control, supervise

    control = Control()
    loop = asyncio.get_running_loop()
    handled = {
        signal.SIGTERM: control.request_stop,
        signal.SIGINT: control.request_stop,
        signal.SIGHUP: control.request_restart,
    }
    for signum, handler in handled.items():
        loop.add_signal_handler(signum, handler)
    try:
        await supervise(
            plugin,
            control,
            check_interval=check_interval,
            backoff=Backoff(initial=min(1.0, max_retry_delay), maximum=max_retry_delay),
        )
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low} to {high}")
        return value

    return parse


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number of seconds from {low:g} to {high:g}"
            )
        return value

    return parse
