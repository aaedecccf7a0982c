"""``bf-jupyter slice explain SLICE [--backend NAME] [--json]``: what a slice becomes on a backend.

Prints the pod fields (container limits, annotations, scheduler name, node selector, environment,
claims and extra objects), the quota it costs (resource, amount, the ResourceQuota keys and who
enforces them) and the isolation it gets, without creating anything. A slice the backend cannot
honour exits 2 with the one-sentence refusal.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from bf_jupyter.backends.base import NO_OFFER, Offer
from bf_jupyter.backends.dra import DraBackend
from bf_jupyter.backends.registry import BACKEND_NAMES, DEFAULT_BACKEND, get_backend
from bf_jupyter.quantity import QuantityError, parse_quantity
from bf_jupyter.slice import TEXT_FORMS, GpuSlice, SliceError

__all__ = ["HELP", "add_arguments", "explain", "run"]

HELP = "Show what a GPU slice becomes on a GPU backend (pod fields, quota, isolation)."
_EPILOG = f"""\
SLICE is the text form used everywhere: {TEXT_FORMS}; then filters such as
device.name=A100, device.name!=T4 or device.uuid=GPU-…

backends: {", ".join(BACKEND_NAMES)}.
  bitfusion   bitfusion.io/gpu-* keys, wrapped in `bitfusion run` by the webhook
  hami        nvidia.com/gpu + gpumem | gpumem-percentage + gpucores, hami-scheduler
  nvidia      whole GPUs (nvidia.com/gpu) and MIG profiles (nvidia.com/mig-<g>g.<mem>gb)
  nvidia-time-slicing, nvidia-mps (and -renamed for renameByDefault): one shared replica
  dra         a ResourceClaimTemplate (resource.k8s.io/v1) the kube-scheduler allocates;
              fractions carry the driver's MPS settings (--device-class for your own class)
  dra-consumable-capacity   the same, a fraction is capacity.requests.memory on a shared device

exit status: 0 the slice renders; 2 it is malformed or the backend cannot honour it
(one line on stderr naming the field, the value and what to ask for instead).

examples:
  bf-jupyter slice explain 1x8Gi cores=30 --backend hami
  bf-jupyter slice explain 1x10Gi --backend nvidia --mig-profiles mig-1g.10gb,mig-2g.20gb
  bf-jupyter slice explain 1x50% --backend nvidia-time-slicing   # refused, exit 2
  bf-jupyter slice explain 2x8Gi device.name=NVIDIA-A100 --backend dra
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    actions = parser.add_subparsers(dest="slice_action", metavar="ACTION", required=True)
    explain_parser = actions.add_parser(
        "explain",
        help=HELP,
        description=HELP,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain_parser.add_argument(
        "slice", nargs="+", metavar="SLICE", help="the slice, e.g. 1x8Gi cores=30 (quotes optional)"
    )
    explain_parser.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        choices=BACKEND_NAMES,
        metavar="NAME",
        help=f"the GPU backend: {', '.join(BACKEND_NAMES)} (default: {DEFAULT_BACKEND})",
    )
    explain_parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of text"
    )
    explain_parser.add_argument(
        "--per-gpu-memory",
        default="",
        metavar="QUANTITY",
        help="memory of one GPU (e.g. 16Gi), to price memory and percent slices",
    )
    explain_parser.add_argument(
        "--mig-profiles",
        default="mig-1g.5gb,mig-1g.10gb,mig-2g.10gb,mig-2g.20gb,mig-3g.20gb,mig-3g.40gb,"
        "mig-4g.20gb,mig-4g.40gb,mig-7g.40gb,mig-7g.80gb",
        metavar="LIST",
        help="comma-separated MIG profiles the cluster offers (nvidia: a memory slice takes the "
        "smallest that holds it; default: the A100/H100 profiles)",
    )
    explain_parser.add_argument(
        "--device-class",
        default="",
        metavar="NAME",
        help="dra backends: the DeviceClass whole and fractional slices ask for "
        "(default: gpu.nvidia.com)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        memory = _memory(args.per_gpu_memory)
    except ValueError as error:
        print(f"bf-jupyter slice explain: {error}", file=sys.stderr)
        return 2
    profiles = tuple(p.strip().lower() for p in args.mig_profiles.split(",") if p.strip())
    offer = Offer(per_gpu_memory_bytes=memory, mig_profiles=profiles)
    try:
        report = explain(" ".join(args.slice), args.backend, offer, args.device_class)
    except SliceError as error:
        if args.json:
            print(json.dumps({"backend": args.backend, "refused": _refusal(error)}, indent=2))
        print(f"bf-jupyter slice explain: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_text(report, sys.stdout)
    return 0


def explain(
    text: str, backend_name: str, offer: Offer = NO_OFFER, device_class: str = ""
) -> dict[str, Any]:
    """The explanation as JSON-ready data (``device_class``: a dra backend's DeviceClass).
    Raises ``SliceError`` (or ``SliceRefused``)."""
    backend = get_backend(backend_name)
    if device_class and isinstance(backend, DraBackend):
        backend = backend.with_device_class(device_class)
    gpu_slice = GpuSlice.parse(text)
    rendering = backend.render(gpu_slice, offer)
    charges = backend.price(gpu_slice, offer)
    return {
        "slice": gpu_slice.to_text(),
        "description": gpu_slice.describe(),
        "backend": backend.name,
        "title": backend.title,
        "isolation": backend.isolation_of(gpu_slice, offer).to_json(),
        "pod": rendering.to_json(),
        "quota": [c.to_json() for c in charges],
    }


def _refusal(error: SliceError) -> dict[str, Any]:
    return {
        "message": str(error),
        "field": error.field,
        "value": str(error.value),
        "accepted": error.accepted,
    }


def _memory(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        value = parse_quantity(text.strip())
    except QuantityError:
        raise ValueError(f"--per-gpu-memory {text} is not a quantity: use e.g. 16Gi") from None
    if value.denominator != 1 or value < 1 << 20:
        raise ValueError(f"--per-gpu-memory {text} is too small: use e.g. 16Gi")
    return int(value)


def _print_text(report: dict[str, Any], out: TextIO) -> None:
    pod = report["pod"]
    lines = [
        f"{report['slice']} ({report['description']}) on {report['backend']} ({report['title']})",
        f"isolation: {report['isolation']['label']}: {report['isolation']['sentence']}",
        "pod:",
    ]
    sections = [
        ("container resources.limits", pod["limits"]),
        ("metadata.annotations", pod["annotations"]),
        ("spec.nodeSelector", pod["node_selector"]),
        ("container env", pod["env"]),
    ]
    for title, values in sections:
        if values:
            lines.append(f"  {title}:")
            lines += [f"    {key}: {value}" for key, value in values.items()]
    if pod["scheduler_name"]:
        lines.append(f"  spec.schedulerName: {pod['scheduler_name']}")
    for title, key in (
        ("spec.resourceClaims", "pod_claims"),
        ("container resources.claims", "container_claims"),
    ):
        if pod[key]:
            lines.append(f"  {title}: {json.dumps(pod[key])}")
    for obj in pod["objects"]:
        lines.append(f"  object {obj['kind']} (created with the pod, owned by it):")
        lines += ["    " + line for line in json.dumps(obj, indent=2).splitlines()]
    lines.append("quota:")
    for charge in report["quota"]:
        keys = " or ".join(charge["quota_keys"])
        lines.append(
            f"  {charge['resource']}: {charge['amount']} ({charge['unit']}) against {keys}, "
            f"enforced by {charge['enforced_by']}"
        )
    out.write("\n".join(lines) + "\n")
