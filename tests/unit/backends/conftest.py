"""Synthetic Node and Pod objects as HAMi, NVIDIA's device plugin and bf's device plugin publish
them (shapes checked against HAMi v2.10.0 and k8s-device-plugin v0.20.0)."""

from __future__ import annotations

import json
from typing import Any

Json = dict[str, Any]


def node(
    name: str,
    *,
    allocatable: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Json:
    return {
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
        "status": {"allocatable": {"cpu": "16", **(allocatable or {})}},
    }


def pod(
    node_name: str,
    limits: dict[str, str] | None = None,
    *,
    annotations: dict[str, str] | None = None,
    requests: dict[str, str] | None = None,
) -> Json:
    resources: Json = {"limits": limits or {}}
    if requests:
        resources["requests"] = requests
    return {
        "metadata": {"name": f"p-{node_name}", "annotations": annotations or {}},
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "resources": resources}]},
    }


def hami_register(devices: list[tuple[str, int, str]]) -> str:
    """HAMi v2.10's registration annotation: a JSON list of devices (uuid, MiB, type)."""
    return json.dumps(
        [
            {
                "id": uuid,
                "index": i,
                "count": 10,
                "devmem": memory,
                "devcore": 100,
                "type": kind,
                "numa": 0,
                "mode": "hami-core",
                "health": True,
            }
            for i, (uuid, memory, kind) in enumerate(devices)
        ]
    )
