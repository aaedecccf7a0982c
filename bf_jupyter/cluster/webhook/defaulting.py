"""What of a container admission compares with what the webhook writes, once the API server has
defaulted it.

Between the mutating webhook and validation (and in every pod the token service reads back) the API
server fills in fields: ``imagePullPolicy``, ``terminationMessagePath``/``Policy``, requests copied
from limits and quantities rewritten (``0.05`` → ``50m``), ``readOnly: false`` on a mount left out,
and the ServiceAccount admission plugin mounts the API token at its well-known path into every
container. An exact comparison would refuse the webhook's own work on a real cluster.

``comparable`` keeps what decides what a container runs and what it reaches, normalised: name,
image, command, args, working directory, env, envFrom, the mounts (name, path, readOnly, subPath,
subPathExpr, propagation), security context, restart policy, probes, lifecycle hooks and any field
this module does not know. It drops only what the API server defaults and cannot give access:
the pull and termination-message policies and the resources (an init container never carries
``bitfusion.io/*``: validation refuses that on its own), and the service-account mount the
ServiceAccount plugin adds. Unknown fields stay, so a new one fails closed. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SERVICE_ACCOUNT_MOUNT_PATH", "comparable", "same_container"]

# Where the ServiceAccount admission plugin mounts the API token into every container.
SERVICE_ACCOUNT_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# Filled in by the API server, and deciding neither what runs nor what it reaches.
_DEFAULTED = frozenset(
    {"imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy", "resources"}
)
# A mount's fields with the value the API server gives them when left out.
_MOUNT_DEFAULTS: Mapping[str, object] = {"readOnly": False, "subPath": "", "subPathExpr": ""}


def comparable(container: Mapping[str, Any]) -> dict[str, Any]:
    """The container as admission compares it: defaulted fields dropped, empty values dropped,
    mounts and env normalised, the ServiceAccount plugin's API-token mount left out."""
    result: dict[str, Any] = {}
    for key, raw in container.items():
        if key in _DEFAULTED:
            continue
        value = raw
        if key == "volumeMounts" and isinstance(raw, list):
            value = [_mount(m) for m in raw if not _service_account_mount(m)]
        elif key == "env" and isinstance(raw, list):
            value = [_env(item) for item in raw]
        if value in (None, [], {}):
            continue  # an empty list or mapping is what the API server returns as absent
        result[key] = value
    return result


def same_container(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """Whether ``actual`` is ``expected`` up to the API server's defaulting."""
    return comparable(actual) == comparable(expected)


def _mount(mount: object) -> object:
    if not isinstance(mount, dict):
        return mount
    return {k: v for k, v in mount.items() if k not in _MOUNT_DEFAULTS or v != _MOUNT_DEFAULTS[k]}


def _service_account_mount(mount: object) -> bool:
    """The read-only API-token mount at its well-known path: it shadows nothing the webhook's
    containers run, whatever volume it comes from (protected volumes are judged on their own)."""
    return (
        isinstance(mount, dict)
        and mount.get("mountPath") == SERVICE_ACCOUNT_MOUNT_PATH
        and mount.get("readOnly") is True
        and set(mount) <= {"name", "mountPath", "readOnly"}
    )


def _env(item: object) -> object:
    """An env entry with an empty ``value`` left out (the API server omits it)."""
    if not isinstance(item, dict) or item.get("value") != "":
        return item
    return {k: v for k, v in item.items() if k != "value"}
