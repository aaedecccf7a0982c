"""The Bitfusion client as it lands in a pod: the init containers, three volumes, the mounts and the
``LD_LIBRARY_PATH`` of the containers that use a slice.

The client init container (the client image of the chosen build) copies the client directory into
an emptyDir that workload containers mount read-only at the same path. The token files land in a
second, writable emptyDir (the client rewrites ``servers.conf``; a Secret mount is read-only),
mounted at ``/etc/bitfusion`` and at the user's ``~/.bitfusion``, where the client looks for
``client.yaml``. They come from one of two sources (``tokenSource``):

- ``secret``: the client init container copies them from the token Secret of the pod's namespace;
- ``service``: a token-fetch init container (the bf-jupyter image) asks the token service in
  bf-system, presenting a projected service-account token bound to the pod and to the service's
  audience; that token's volume is mounted into the fetch container only, and the namespace holds
  no token Secret.

The device-plugin DaemonSet in ``cluster/`` uses the Secret layout; a test holds the two together.
Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from bf_jupyter.cluster.webhook.config import TokenSource
from bf_jupyter.contract import SLICE_LIMIT_ENV, ManagementMode

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.config import ClientBuild, WebhookConfig
    from bf_jupyter.slice import GpuSlice

__all__ = [
    "CLIENT_VOLUME",
    "GUARD_ENV",
    "GUARD_INIT_CONTAINER",
    "INIT_CONTAINER",
    "LIBRARY_ENV",
    "PROTECTED_VOLUMES",
    "SERVICE_ACCOUNT_TOKEN_VOLUME",
    "TOKEN_CA_ENV",
    "TOKEN_DIR",
    "TOKEN_FETCH_CONTAINER",
    "TOKEN_FILES",
    "TOKEN_SECRET_VOLUME",
    "TOKEN_VOLUME",
    "USER_LIBRARY_ENV",
    "guarded_env",
    "guards",
    "init_container",
    "init_containers",
    "mount_conflicts",
    "prefixed_env",
    "token_fetch_container",
    "volumes",
    "with_mounts",
    "workload_mounts",
]

INIT_CONTAINER = "bf-jupyter-client-init"
CLIENT_VOLUME = "bf-jupyter-client"
TOKEN_VOLUME = "bf-jupyter-token"
TOKEN_SECRET_VOLUME = "bf-jupyter-token-secret"
# Token-service mode: the projected service-account token the fetch container presents.
SERVICE_ACCOUNT_TOKEN_VOLUME = "bf-jupyter-token-service-account"
PROTECTED_VOLUMES = frozenset(
    {CLIENT_VOLUME, TOKEN_VOLUME, TOKEN_SECRET_VOLUME, SERVICE_ACCOUNT_TOKEN_VOLUME}
)
TOKEN_FETCH_CONTAINER = "bf-jupyter-token-fetch"
# The PEM CA of the token service's certificate (public), for the fetch container.
TOKEN_CA_ENV = "BF_JUPYTER_TOKEN_SERVICE_CA"
# Injection mode: the slice the client's guard lets `bitfusion run` ask for (text form, 1x50%).
GUARD_ENV = SLICE_LIMIT_ENV
GUARD_INIT_CONTAINER = "bf-jupyter-slice-guard"
TOKEN_DIR = "/etc/bitfusion"
TOKEN_FILES = ("ca.crt", "client.yaml", "servers.conf")
LIBRARY_ENV = "LD_LIBRARY_PATH"
# Where a user's LD_LIBRARY_PATH given by valueFrom moves, so the new value can reference it.
USER_LIBRARY_ENV = "BF_JUPYTER_USER_LD_LIBRARY_PATH"

_STAGE_CLIENT = "/bf-jupyter/client"
_STAGE_TOKEN = "/bf-jupyter/token"
_SECRET_MOUNT = "/bf-jupyter/token-secret"
_ACCOUNT_MOUNT = "/bf-jupyter/service-account"
_ACCOUNT_TOKEN_PATH = "token"
# The kubelet renews a projected token at 80 % of its life; the fetch uses it within seconds.
_ACCOUNT_TOKEN_SECONDS = 600
# A constant script: every path reaches it as a positional argument ($1..$4), never spliced into the
# text, so no value can change what runs. The pod's containers may run as any uid and the emptyDir is
# private to the pod, hence world-readable token files and a world-writable servers.conf.
_COPY_SCRIPT = (
    'set -e; cp -R "$1"/. "$2"/; mkdir -p "$4"/tls; '
    'cp -L "$3"/ca.crt "$4"/tls/ca.crt; cp -L "$3"/client.yaml "$3"/servers.conf "$4"/; '
    'chmod 0644 "$4"/client.yaml "$4"/tls/ca.crt; chmod 0666 "$4"/servers.conf'
)
# Token-service mode: the client only (the fetch container writes the token files, same layout).
_COPY_CLIENT_SCRIPT = 'set -e; cp -R "$1"/. "$2"/'

_SECRET_MODE = 0o444
# Injection mode: the guard init container (bf-jupyter image) stages the guard at $2/_GUARD_STAGE
# first; then the client init container, after the copy above, keeps the real client beside it as
# `<binary>-real` and puts the guard in its place ($5: the binary's path inside the client dir).
_GUARD_STAGE = ".bf-jupyter-guard/bitfusion"
_GUARD_SCRIPT = (
    '; mv "$2/$5" "$2/$5-real"; cp "$2"/' + _GUARD_STAGE + ' "$2/$5"; chmod 0755 "$2/$5"; '
    'rm -rf "$2"/.bf-jupyter-guard'
)


def init_container(
    build: ClientBuild,
    config: WebhookConfig,
    *,
    guarded: bool = False,
    source: TokenSource | None = None,
) -> dict[str, Any]:
    """The init container that stages the client (and, from the token Secret, the token files) for
    the pod; ``guarded`` (injection mode) also puts the staged slice guard in the client binary's
    place. ``source`` defaults to the configured token source."""
    from_secret = (source or config.token_source) is TokenSource.SECRET
    script = _COPY_SCRIPT if from_secret else _COPY_CLIENT_SCRIPT
    command = ["/bin/sh", "-c", script + (_GUARD_SCRIPT if guarded else "")]
    command += [INIT_CONTAINER, build.client_dir, _STAGE_CLIENT, _SECRET_MOUNT, _STAGE_TOKEN]
    if guarded:
        command.append(str(PurePosixPath(build.binary).relative_to(build.client_dir)))
    mounts: list[dict[str, Any]] = [{"name": CLIENT_VOLUME, "mountPath": _STAGE_CLIENT}]
    if from_secret:
        mounts += [
            {"name": TOKEN_VOLUME, "mountPath": _STAGE_TOKEN},
            {"name": TOKEN_SECRET_VOLUME, "mountPath": _SECRET_MOUNT, "readOnly": True},
        ]
    return {
        "name": INIT_CONTAINER,
        "image": build.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": command,
        "resources": {section: dict(v) for section, v in config.init_resources.items()},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }


def token_fetch_container(config: WebhookConfig) -> dict[str, Any]:
    """Token-service mode: asks the token service for the token files with the pod's projected
    service-account token (mounted here only) and writes them where the secret copy would."""
    return {
        "name": TOKEN_FETCH_CONTAINER,
        "image": config.guard_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": [
            "bf-jupyter",
            "token-fetch",
            "--url",
            config.token_service_url,
            "--service-account-token",
            f"{_ACCOUNT_MOUNT}/{_ACCOUNT_TOKEN_PATH}",
            "--out",
            _STAGE_TOKEN,
        ],
        "env": [{"name": TOKEN_CA_ENV, "value": config.token_service_ca}],
        "resources": {section: dict(v) for section, v in config.init_resources.items()},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            {"name": TOKEN_VOLUME, "mountPath": _STAGE_TOKEN},
            {"name": SERVICE_ACCOUNT_TOKEN_VOLUME, "mountPath": _ACCOUNT_MOUNT, "readOnly": True},
        ],
    }


def init_containers(
    build: ClientBuild, config: WebhookConfig, mode: ManagementMode
) -> list[dict[str, Any]]:
    """Every init container the webhook adds to a pod of ``mode`` (all or injection), in order:
    the token fetch first (token-service mode: a refusal stops the pod before anything is copied),
    then the guard (injection mode), then the client."""
    fetch = [token_fetch_container(config)] if config.token_source is TokenSource.SERVICE else []
    if mode is not ManagementMode.INJECTION:
        return [*fetch, init_container(build, config)]
    return [*fetch, guard_init_container(config), init_container(build, config, guarded=True)]


def guard_init_container(config: WebhookConfig) -> dict[str, Any]:
    """Injection mode: stages the slice guard into the client volume before the client is copied."""
    return {
        "name": GUARD_INIT_CONTAINER,
        "image": config.guard_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["bf-jupyter", "slice-guard", "--stage", f"{_STAGE_CLIENT}/{_GUARD_STAGE}"],
        "resources": {section: dict(v) for section, v in config.init_resources.items()},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": CLIENT_VOLUME, "mountPath": _STAGE_CLIENT}],
    }


def volumes(config: WebhookConfig, *, source: TokenSource | None = None) -> list[dict[str, Any]]:
    """The pod volumes: the client copy, the writable token copy (in memory), and the token Secret
    (secret mode) or the service-account token for the token service (service mode)."""
    staged = [
        {"name": CLIENT_VOLUME, "emptyDir": {}},
        {"name": TOKEN_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    if (source or config.token_source) is TokenSource.SECRET:
        secret = {"secretName": config.token_secret, "defaultMode": _SECRET_MODE}
        return [*staged, {"name": TOKEN_SECRET_VOLUME, "secret": secret}]
    account = {
        "audience": config.token_audience,
        "expirationSeconds": _ACCOUNT_TOKEN_SECONDS,
        "path": _ACCOUNT_TOKEN_PATH,
    }
    projected = {"sources": [{"serviceAccountToken": account}], "defaultMode": _SECRET_MODE}
    return [*staged, {"name": SERVICE_ACCOUNT_TOKEN_VOLUME, "projected": projected}]


def workload_mounts(build: ClientBuild, config: WebhookConfig) -> list[dict[str, Any]]:
    """The mounts a container that uses a slice gets."""
    return [
        {"name": CLIENT_VOLUME, "mountPath": build.client_dir, "readOnly": True},
        {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR},
        {"name": TOKEN_VOLUME, "mountPath": config.user_config_dir},
    ]


def mount_conflicts(container: Mapping[str, Any], wanted: list[dict[str, Any]]) -> list[str]:
    """Paths the container already mounts from another volume where the client must go."""
    existing = container.get("volumeMounts") or []
    taken = {
        m.get("mountPath"): m.get("name")
        for m in existing
        if isinstance(m, dict) and isinstance(m.get("mountPath"), str)
    }
    return [
        f"{m['mountPath']} (volume {taken[m['mountPath']]})"
        for m in wanted
        if m["mountPath"] in taken and taken[m["mountPath"]] != m["name"]
    ]


def with_mounts(existing: list[Any], wanted: list[dict[str, Any]]) -> list[Any]:
    """``existing`` plus each wanted mount it does not already have (same volume, same path)."""
    have = {(m.get("name"), m.get("mountPath")) for m in existing if isinstance(m, dict)}
    return existing + [m for m in wanted if (m["name"], m["mountPath"]) not in have]


def prefixed_env(env: list[Any], library_path: str, fallback: str) -> list[Any]:
    """``env`` with ``LD_LIBRARY_PATH`` starting with the client's libraries and keeping what the
    container set: a value is kept after the client's path; a ``valueFrom`` moves to
    ``BF_JUPYTER_USER_LD_LIBRARY_PATH`` and is referenced as ``$(...)``. With neither, ``fallback``
    (the library path GPU images usually set, which admission cannot see) follows. Idempotent."""
    env = list(env)
    positions = [
        i
        for i, item in enumerate(env)
        if isinstance(item, dict) and item.get("name") == LIBRARY_ENV
    ]
    if not positions:
        value = f"{library_path}:{fallback}" if fallback else library_path
        return [*env, {"name": LIBRARY_ENV, "value": value}]
    index = positions[-1]  # Kubernetes uses the last definition of a name
    current = env[index]
    value = current.get("value")
    if "valueFrom" in current:
        moved = {k: v for k, v in current.items() if k != "value"} | {"name": USER_LIBRARY_ENV}
        env[index : index + 1] = [
            moved,
            {"name": LIBRARY_ENV, "value": f"{library_path}:$({USER_LIBRARY_ENV})"},
        ]
        return env
    text = value if isinstance(value, str) else ""
    if text == library_path or text.startswith(library_path + ":"):
        return env
    env[index] = {**current, "value": f"{library_path}:{text}" if text else library_path}
    return env


def guarded_env(env: list[Any], gpu_slice: GpuSlice) -> list[Any]:
    """``env`` with the guard's slice set (injection mode), replacing any value the pod gave it."""
    kept = [item for item in env if not (isinstance(item, dict) and item.get("name") == GUARD_ENV)]
    return [*kept, {"name": GUARD_ENV, "value": gpu_slice.to_text()}]


def guards(container: Mapping[str, Any], gpu_slice: GpuSlice) -> bool:
    """Whether the container's guard is set to exactly ``gpu_slice`` (and set once)."""
    env = container.get("env")
    found = [
        item
        for item in (env if isinstance(env, list) else [])
        if isinstance(item, dict) and item.get("name") == GUARD_ENV
    ]
    return found == [{"name": GUARD_ENV, "value": gpu_slice.to_text()}]
