"""``bf-jupyter pool``: the GPU pool as the Bitfusion client in use reports it.

Works through the adapter, so it shows a real Bitfusion pool as well as ``bitfusion-sim``'s; leases
appear only where the client lists them (the simulator does). ``--json`` prints
``{"client": …, "pool": …}`` for scripts; the server extension serves the same dict.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from bf_jupyter.bitfusion.client import BitfusionClientError, pool_report, resolve_client

if TYPE_CHECKING:
    from bf_jupyter.bitfusion.client import BitfusionClient
    from bf_jupyter.bitfusion.records import GpuRecord, PoolListing

__all__ = ["HELP", "add_arguments", "render_pool", "run"]

HELP = "Show the GPU pool: servers, GPUs, memory used and free, leases, and the client in use."
_BAR_WIDTH = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"client": ..., "pool": ...} as JSON instead of text',
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long to wait for the client's list_gpus (default: 15)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the pool; exit 1 with one line on stderr when the client is missing or fails."""
    try:
        client = resolve_client()
        listing = client.list_gpus(timeout=args.timeout)
    except BitfusionClientError as error:
        print(f"bf-jupyter pool: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(pool_report(client, listing), indent=2))
    else:
        print(render_pool(client, listing), end="")
    return 0


def render_pool(client: BitfusionClient, listing: PoolListing) -> str:
    """The pool for people: one block per server, a usage bar per GPU, then the leases."""
    kind = "simulated (virtual GPUs, no real GPU behind them)" if listing.simulated else "real GPUs"
    lines = [f"Pool:   {kind}", f"Client: {client.describe()}", ""]
    if not listing.servers:
        lines.append("The client listed no servers.")
    for server in listing.servers:
        lines.append(f"server {server.index}  {server.address}  {server.status}".rstrip())
        width = max((len(g.name or "") for g in server.gpus), default=0)
        lines.extend(f"  {_gpu_line(gpu, width)}" for gpu in server.gpus)
        lines.extend(
            f"  lease {lease.lease_id}  {lease.slice_text}  on GPU"
            f"{'s' if len(lease.gpus) != 1 else ''} {', '.join(str(g) for g in lease.gpus)}"
            f"  held by {lease.holder}  since {lease.since}"
            for lease in server.leases
        )
        lines.append("")
    if listing.unparsed:
        lines.append("The client also said:")
        lines.extend(f"  {line.strip()}" for line in listing.unparsed)
    return "\n".join(lines).rstrip("\n") + "\n"


def _gpu_line(gpu: GpuRecord, name_width: int) -> str:
    filled = round(_BAR_WIDTH * gpu.used_fraction)
    bar = "#" * filled + "." * (_BAR_WIDTH - filled)
    name = f"{gpu.name or '':<{name_width}}  " if name_width else ""
    return (
        f"GPU {gpu.index}  {name}[{bar}] {gpu.memory_used_mib:>6} / {gpu.memory_total_mib} MiB used,"
        f" {gpu.memory_free_mib} MiB free"
    )
