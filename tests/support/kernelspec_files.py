"""Writing a kernelspec into a test's Jupyter data directory: the set-up the server tests share."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

IPYKERNEL_ARGV = (sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}")


def write_kernelspec(
    data_dir: Path,
    name: str,
    *,
    display_name: str,
    provisioner: str | None = None,
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    argv: Sequence[str] = IPYKERNEL_ARGV,
) -> Path:
    """``data_dir/kernels/<name>/kernel.json`` running ``argv`` (this interpreter's ipykernel),
    with ``provisioner`` (and its ``config``) as the kernel provisioner when given."""
    spec_dir = data_dir / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec_metadata = dict(metadata or {})
    if provisioner is not None:
        spec_metadata["kernel_provisioner"] = {
            "provisioner_name": provisioner,
            **({"config": dict(config)} if config else {}),
        }
    spec: dict[str, Any] = {"argv": list(argv), "display_name": display_name, "language": "python"}
    if spec_metadata:
        spec["metadata"] = spec_metadata
    path = spec_dir / "kernel.json"
    path.write_text(json.dumps(spec))
    return path
