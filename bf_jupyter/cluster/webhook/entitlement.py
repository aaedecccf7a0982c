"""Who in a pod may reach the Bitfusion client and token: the rule both admission webhooks apply.

A container is either wrapped and priced, or gets nothing of Bitfusion. *Protected* volumes are the
ones the webhook injects (by name) and any volume whose source is the token (the token Secret,
directly or projected); a container also reaches the token through ``env``/``envFrom`` references to
that Secret. Only the webhook's own init container and *entitled* containers may mount them; only
entitled containers may carry ``bitfusion.io/gpu``. A regular container is entitled when the webhook
recorded its slice (``slice.bitfusion.io/<name>``), its units equal that slice's price, and its command
is exactly ``bitfusion run`` of that slice (mode all) or it runs under the slice guard (mode
injection). "Written by the webhook" is thus checked as "equal to what the webhook writes" (up to
the API server's defaulting, see ``defaulting``): a pod that forges every part is the pod the
webhook would have made, priced as such. The token service
asks the same rule of a running pod before it hands out the token (``pod_token_problems``). Pure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bf_jupyter.cluster.webhook import injection
from bf_jupyter.cluster.webhook.defaulting import same_container
from bf_jupyter.cluster.webhook.podspec import (
    PodShapeError,
    annotations_of,
    container_name,
    containers_of,
    quota_units_of,
)
from bf_jupyter.contract import (
    ANNOTATION_STATUS,
    QUOTA_RESOURCE,
    STATUS_INJECTED,
    ManagementMode,
    slice_annotation_key,
)
from bf_jupyter.slice import GpuSlice, SliceError

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.config import ClientBuild, WebhookConfig

__all__ = [
    "CONTAINER_KINDS",
    "ProtectedVolumes",
    "access_problems",
    "entitlement_problems",
    "is_wrapped",
    "pod_token_problems",
]

# spec field -> how messages name a container of it
CONTAINER_KINDS = {
    "containers": "container",
    "initContainers": "init container",
    "ephemeralContainers": "ephemeral container",
}


@dataclass(frozen=True)
class ProtectedVolumes:
    """The pod's volumes that hold (or stage) the client or the token: name -> why it is protected.
    ``secret_sourced`` are those whose source is the token Secret itself (only the init container
    mounts them, never a workload)."""

    why: Mapping[str, str]
    secret_sourced: frozenset[str]

    @classmethod
    def of(cls, pod: Mapping[str, Any], config: WebhookConfig) -> ProtectedVolumes:
        """Read ``spec.volumes``. Raises ``PodShapeError`` when it is not a list of mappings."""
        spec = pod.get("spec")
        volumes = spec.get("volumes") if isinstance(spec, dict) else None
        if volumes is None:
            volumes = []
        if not isinstance(volumes, list):
            raise PodShapeError("spec.volumes", volumes, "a list of volumes")
        why: dict[str, str] = {}
        secret_sourced: set[str] = set()
        for index, volume in enumerate(volumes):
            if not isinstance(volume, dict) or not isinstance(volume.get("name"), str):
                raise PodShapeError(f"spec.volumes[{index}]", volume, "a named volume")
            name = volume["name"]
            source = _token_source(volume, config)
            if source is not None:
                why[name] = source
                secret_sourced.add(name)
            elif name in injection.PROTECTED_VOLUMES:
                why[name] = f"the webhook's volume {name}"
        return cls(why, frozenset(secret_sourced))


def _token_source(volume: Mapping[str, Any], config: WebhookConfig) -> str | None:
    """Why the volume's source is the token, or None."""
    secret = volume.get("secret")
    if isinstance(secret, dict) and secret.get("secretName") == config.token_secret:
        return f"the token Secret {config.token_secret}"
    projected = volume.get("projected")
    sources = projected.get("sources") if isinstance(projected, dict) else None
    for item in sources if isinstance(sources, list) else []:
        if not isinstance(item, dict):
            continue
        inner = item.get("secret")
        if isinstance(inner, dict) and inner.get("name") == config.token_secret:
            return f"the token Secret {config.token_secret} (projected)"
        account = item.get("serviceAccountToken")
        if (
            config.token_audience
            and isinstance(account, dict)
            and account.get("audience") == config.token_audience
        ):
            return f"a service-account token for the token service ({config.token_audience})"
    return None


def is_wrapped(container: Mapping[str, Any], gpu_slice: GpuSlice, build: ClientBuild) -> bool:
    """Whether the container's command is exactly ``bitfusion run`` of ``gpu_slice`` around a
    non-empty command, with no ``args`` (the webhook moves them into the command)."""
    command = container.get("command")
    if container.get("args") or not isinstance(command, list):
        return False
    prefix = build.client.run_argv(gpu_slice, ["-"])[:-1]
    return len(command) > len(prefix) and command[: len(prefix)] == prefix


def entitlement_problems(
    container: Mapping[str, Any],
    name: str,
    recorded: str,
    annotations: Mapping[str, str],
    config: WebhookConfig,
    *,
    check_units: bool = True,
) -> list[str]:
    """Why a regular container with a recorded slice is not entitled to the client (empty: it is):
    the pod is not managed, the units are not the slice's price (unless ``check_units`` is false:
    validation reports prices itself), or the command is neither wrapped (mode all) nor guarded
    (mode injection)."""
    mode = ManagementMode.from_annotations(annotations)
    forged = (
        f"container {name} carries {slice_annotation_key(name)} but "
        "{reason}: that annotation and bitfusion.io/gpu are written only by the webhook; "
        "ask with bitfusion.io/gpu-amount (and gpu-percent or gpu-memory) instead"
    )
    if mode is ManagementMode.NONE:
        return [forged.format(reason="the pod does not ask for Bitfusion")]
    try:
        gpu_slice = GpuSlice.parse(recorded)
        units = gpu_slice.quota_units(config.per_gpu_memory_bytes)
        build = config.client_for(annotations)
    except (SliceError, LookupError) as error:
        return [f"container {name}: {error}"]
    if check_units and quota_units_of(container) != units:
        return [forged.format(reason=f"its {QUOTA_RESOURCE} is not that slice's {units} units")]
    if mode is ManagementMode.ALL and not is_wrapped(container, gpu_slice, build):
        return [forged.format(reason=f"its command is not `bitfusion run` of {recorded}")]
    if mode is ManagementMode.INJECTION and not injection.guards(container, gpu_slice):
        return [forged.format(reason=f"it does not run under the slice guard for {recorded}")]
    return []


def pod_token_problems(pod: Mapping[str, Any], config: WebhookConfig) -> list[str]:
    """Why a pod may not have the Bitfusion token files (empty: it may): the webhook must have marked
    it injected, at least one regular container must be entitled to its recorded slice (wrapped or
    guarded, and priced), none may be a forgery, and no container may reach the protected volumes
    without being allowed (``access_problems``: the fetch container must be the webhook's own).
    Raises ``PodShapeError`` for a malformed pod."""
    annotations = annotations_of(pod)
    if annotations.get(ANNOTATION_STATUS) != STATUS_INJECTED:
        return [
            f"the pod lacks {ANNOTATION_STATUS}: {STATUS_INJECTED}: the Bitfusion webhook did not "
            "admit it; create it with auto-management/bitfusion and a GPU slice"
        ]
    kinds = {field: containers_of(pod, field) for field in CONTAINER_KINDS}
    problems: list[str] = []
    entitled: set[str] = set()
    for index, container in enumerate(kinds["containers"]):
        name = container_name(container, index)
        recorded = annotations.get(slice_annotation_key(name))
        if recorded is None:
            continue
        forged = entitlement_problems(container, name, recorded, annotations, config)
        problems += forged
        if not forged:
            entitled.add(name)
    if not entitled and not problems:
        problems.append(
            "no container of the pod runs inside `bitfusion run` of a priced slice: only such "
            "pods get the token"
        )
    return problems + access_problems(pod, kinds, entitled, config)


def access_problems(
    pod: Mapping[str, Any],
    containers: Mapping[str, list[dict[str, Any]]],
    entitled: set[str],
    config: WebhookConfig,
) -> list[str]:
    """Every container (regular, init, ephemeral) that mounts a protected volume or reads the token
    Secret through its environment without being allowed to. ``containers`` maps each spec field to
    its containers; ``entitled`` names the regular containers that may use the client."""
    protected = ProtectedVolumes.of(pod, config)
    expected_init = _expected_init(pod, config)
    problems: list[str] = []
    for field, kind in CONTAINER_KINDS.items():
        for index, container in enumerate(containers.get(field, [])):
            name = container_name(container, index, field)
            allowed: frozenset[str] = frozenset()
            if field == "containers" and name in entitled:
                allowed = frozenset(protected.why) - protected.secret_sourced
            elif field == "initContainers" and _is_expected(container, expected_init):
                allowed = frozenset(protected.why)
            for volume in sorted(set(_mounted(container, name)) & set(protected.why) - allowed):
                problems.append(
                    f"{kind} {name} mounts volume {volume} ({protected.why[volume]}): only the "
                    "webhook's init container and containers that run inside `bitfusion run` of "
                    "their priced slice may; remove the mount"
                )
            if _reads_secret(container, config.token_secret):
                problems.append(
                    f"{kind} {name} reads the token Secret {config.token_secret} through its "
                    "environment: no container may; remove the reference"
                )
    return problems


def _expected_init(pod: Mapping[str, Any], config: WebhookConfig) -> list[dict[str, Any]]:
    """The init containers the webhook adds to this pod (none when it is not marked injected)."""
    metadata = pod.get("metadata")
    notes = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(notes, dict) or notes.get(ANNOTATION_STATUS) != STATUS_INJECTED:
        return []
    try:
        build = config.client_for(notes)
    except LookupError:
        return []
    return injection.init_containers(build, config, ManagementMode.from_annotations(notes))


def _is_expected(container: Mapping[str, Any], expected: list[dict[str, Any]]) -> bool:
    """Whether the init container is one the webhook adds, up to the API server's defaulting."""
    return any(same_container(container, wanted) for wanted in expected)


def _mounted(container: Mapping[str, Any], name: str) -> Iterator[str]:
    mounts = container.get("volumeMounts")
    if mounts is None:
        return
    if not isinstance(mounts, list):
        raise PodShapeError(f"container {name} volumeMounts", mounts, "a list")
    for mount in mounts:
        if isinstance(mount, dict) and isinstance(mount.get("name"), str):
            yield mount["name"]


def _reads_secret(container: Mapping[str, Any], secret: str) -> bool:
    for item in _list(container.get("envFrom")):
        ref = item.get("secretRef")
        if isinstance(ref, dict) and ref.get("name") == secret:
            return True
    for item in _list(container.get("env")):
        source = item.get("valueFrom")
        ref = source.get("secretKeyRef") if isinstance(source, dict) else None
        if isinstance(ref, dict) and ref.get("name") == secret:
            return True
    return False


def _list(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
