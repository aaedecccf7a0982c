"""The mutating rule: a pod that asks for Bitfusion gets the client, its GPU containers run inside
``bitfusion run``, and its slice keys become quota units.

``mutate_pod`` is pure (pod + configuration → ``Verdict`` with a JSONPatch, or a denial listing every
problem) and idempotent: it computes the pod it wants from the pod it sees and returns the difference,
so a pod it already mutated yields an empty patch (``reinvocationPolicy: IfNeeded`` is safe).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bf_jupyter.cluster.webhook import injection
from bf_jupyter.cluster.webhook.config import ClientBuild, UnknownClient, WebhookConfig
from bf_jupyter.cluster.webhook.entitlement import entitlement_problems
from bf_jupyter.cluster.webhook.patching import REMOVE, PatchBuilder
from bf_jupyter.cluster.webhook.podspec import (
    PodShapeError,
    annotations_of,
    container_name,
    containers_of,
    has_slice_keys,
    resource_section,
)
from bf_jupyter.cluster.webhook.review import Verdict
from bf_jupyter.contract import (
    ANNOTATION_MANAGEMENT,
    ANNOTATION_STATUS,
    QUOTA_RESOURCE,
    RESOURCE_AMOUNT,
    SLICE_RESOURCE_KEYS,
    STATUS_INJECTED,
    ManagementMode,
    slice_annotation_key,
)
from bf_jupyter.slice import GpuSlice, SliceError

__all__ = ["mutate_pod"]

_UNGUARDABLE = (
    "injection mode puts the slice guard in the client's place, but client "
    "{build.os}/{build.version} has its binary {build.binary} outside clientDir "
    "{build.client_dir}: fix the client table, or use " + ANNOTATION_MANAGEMENT + ": all"
)

_SLICE_HINT = (
    f"add {RESOURCE_AMOUNT} (with bitfusion.io/gpu-percent or bitfusion.io/gpu-memory) "
    "to the limits of the container that uses the GPU"
)


def mutate_pod(pod: Mapping[str, Any], config: WebhookConfig) -> Verdict:
    """Mutate a pod being created. Pods whose ``auto-management/bitfusion`` is not all/injection
    (or y/yes/true/on) are allowed unchanged; for the others, the patch or every problem found."""
    annotations = annotations_of(pod)
    mode = ManagementMode.from_annotations(annotations)
    if mode is ManagementMode.NONE:
        return Verdict.allow()
    try:
        return _mutate_managed(pod, annotations, mode, config)
    except PodShapeError as error:
        return Verdict.deny([f"pod is malformed: {error}"], code=400)


@dataclass
class _SliceUser:
    """A container that runs on a slice: where it is, as received, and the new value of each
    field that changes."""

    index: int
    container: dict[str, Any]
    gpu_slice: GpuSlice
    changes: dict[str, Any] = dataclasses.field(default_factory=dict)


def _mutate_managed(
    pod: Mapping[str, Any], annotations: dict[str, str], mode: ManagementMode, config: WebhookConfig
) -> Verdict:
    build, build_problem = _client_build(annotations, mode, config)
    problems = [build_problem] if build_problem else []
    problems += _init_container_slices(pod)
    users, recorded, container_problems = _slice_users(pod, annotations, mode, build, config)
    problems += container_problems
    if not users and not problems:
        problems.append(
            f"pod asks for Bitfusion ({ANNOTATION_MANAGEMENT}: {annotations[ANNOTATION_MANAGEMENT]}) "
            f"but no container asks for a GPU slice: {_SLICE_HINT}, or remove the annotation"
        )
    if build is not None:
        for user in users:
            client_changes, client_problems = _add_client(user.container, build, config)
            problems += client_problems
            user.changes.update(client_changes)
            if mode is ManagementMode.INJECTION:
                user.changes["env"] = injection.guarded_env(
                    user.changes.get("env", []), user.gpu_slice
                )
    if problems or build is None:
        return Verdict.deny(problems)

    patch = PatchBuilder()
    for user in users:
        for name, value in user.changes.items():
            patch.set_member(f"/spec/containers/{user.index}", user.container, name, value)
    _add_pod_parts(
        patch,
        pod,
        build,
        config,
        mode=mode,
        annotations={ANNOTATION_STATUS: STATUS_INJECTED, **recorded},
    )
    return Verdict.allow(patch=patch.build())


def _slice_users(
    pod: Mapping[str, Any],
    annotations: dict[str, str],
    mode: ManagementMode,
    build: ClientBuild | None,
    config: WebhookConfig,
) -> tuple[list[_SliceUser], dict[str, str], list[str]]:
    """The containers on a slice (converted now or by an earlier invocation), the slice
    annotations to record for those converted now, and the problems found."""
    users: list[_SliceUser] = []
    recorded: dict[str, str] = {}
    problems: list[str] = []
    for index, container in enumerate(containers_of(pod)):
        name = container_name(container, index)
        try:
            gpu_slice = GpuSlice.from_container(container, annotations)
        except SliceError as error:
            problems.append(f"container {name}: {error}")
            continue
        if gpu_slice is None:
            earlier, forged = _converted_earlier(
                container, index=index, name=name, annotations=annotations, config=config
            )
            problems += forged
            users += [earlier] if earlier else []
            continue
        changes = _convert(
            container, name, gpu_slice=gpu_slice, mode=mode, build=build, config=config
        )
        if isinstance(changes, str):
            problems.append(changes)
            continue
        recorded[slice_annotation_key(name)] = gpu_slice.to_text()
        users.append(_SliceUser(index, container, gpu_slice, changes))
    return users, recorded, problems


def _client_build(
    annotations: dict[str, str], mode: ManagementMode, config: WebhookConfig
) -> tuple[ClientBuild | None, str | None]:
    """The client build the pod asks for, or None and the reason."""
    try:
        build = config.client_for(annotations)
    except UnknownClient as error:
        return None, str(error)
    if mode is ManagementMode.INJECTION and not build.binary_in_client_dir:
        return None, _UNGUARDABLE.format(build=build)
    return build, None


def _converted_earlier(
    container: dict[str, Any],
    *,
    index: int,
    name: str,
    annotations: dict[str, str],
    config: WebhookConfig,
) -> tuple[_SliceUser | None, list[str]]:
    """A container without slice keys: one an earlier invocation converted (its recorded slice,
    units and command are exactly what this webhook writes) is a slice user with nothing to
    change; a forged one is a problem; any other is left alone (neither)."""
    earlier = annotations.get(slice_annotation_key(name))
    if earlier is None:
        return None, []
    forged = entitlement_problems(container, name, earlier, annotations, config)
    if forged:
        return None, forged
    return _SliceUser(index, container, GpuSlice.parse(earlier)), []


def _init_container_slices(pod: Mapping[str, Any]) -> list[str]:
    return [
        f"init container {container_name(c, i, 'initContainers')} asks for a GPU slice: only "
        "containers in spec.containers can run inside `bitfusion run`; move its bitfusion.io keys there"
        for i, c in enumerate(containers_of(pod, "initContainers"))
        if has_slice_keys(c)
    ]


def _convert(
    container: Mapping[str, Any],
    name: str,
    *,
    gpu_slice: GpuSlice,
    mode: ManagementMode,
    build: ClientBuild | None,
    config: WebhookConfig,
) -> dict[str, Any] | str:
    """Wrap the command (mode all) and turn the slice keys into quota units: the new value of
    each field that changes, or the problem."""
    changes: dict[str, Any] = {}
    try:
        units = gpu_slice.quota_units(config.per_gpu_memory_bytes)
    except SliceError as error:
        return f"container {name}: {error}"
    if mode is ManagementMode.ALL:
        command = _text_list(container, "command", name)
        args = _text_list(container, "args", name)
        if not command:
            return (
                f"container {name} has no command: set `command` (and `args`) in the pod spec so it "
                "can run inside `bitfusion run`; the image's ENTRYPOINT cannot be wrapped"
            )
        if build is not None:
            changes["command"] = build.client.run_argv(gpu_slice, [*command, *args])
            changes["args"] = REMOVE
    sections = {section: resource_section(container, section) for section in ("requests", "limits")}
    converted = dict(container.get("resources") or {})
    for section, values in sections.items():
        kept = {k: v for k, v in values.items() if k not in SLICE_RESOURCE_KEYS}
        converted[section] = kept | {QUOTA_RESOURCE: str(units)}
    changes["resources"] = converted
    return changes


def _text_list(container: Mapping[str, Any], field: str, name: str) -> list[str]:
    value = container.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PodShapeError(f"container {name} {field}", value, "a list of strings")
    return value


def _add_client(
    container: Mapping[str, Any], build: ClientBuild, config: WebhookConfig
) -> tuple[dict[str, Any], list[str]]:
    """Mount the client and the token into the container and prefix its library path: the fields
    that change, or the problems."""
    name = container.get("name")
    mounts = injection.workload_mounts(build, config)
    existing = container.get("volumeMounts") or []
    env = container.get("env") or []
    if not isinstance(existing, list):
        raise PodShapeError(f"container {name} volumeMounts", existing, "a list")
    if not isinstance(env, list):
        raise PodShapeError(f"container {name} env", env, "a list")
    conflicts = injection.mount_conflicts(container, mounts)
    if conflicts:
        return {}, [
            f"container {name} already mounts {', '.join(conflicts)} where the Bitfusion client "
            "goes: remove those mounts, the webhook provides the client and the token there"
        ]
    return {
        "volumeMounts": injection.with_mounts(existing, mounts),
        "env": injection.prefixed_env(env, build.library_path, config.fallback_library_path),
    }, []


def _add_pod_parts(
    patch: PatchBuilder,
    pod: Mapping[str, Any],
    build: ClientBuild,
    config: WebhookConfig,
    *,
    mode: ManagementMode,
    annotations: dict[str, str],
) -> None:
    """The init containers, the volumes and the annotations, each replacing an earlier copy of itself."""
    spec = pod["spec"]
    for field, items in (
        ("initContainers", injection.init_containers(build, config, mode)),
        ("volumes", injection.volumes(config)),
    ):
        if spec.get(field) is not None and not isinstance(spec[field], list):
            raise PodShapeError(f"spec.{field}", spec[field], "a list")
        patch.set_named_items("/spec", spec, field, items)
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict):
        patch.set_member("", pod, "metadata", {"annotations": annotations})
        return
    current = metadata.get("annotations")
    if not isinstance(current, dict):
        patch.set_member("/metadata", metadata, "annotations", annotations)
        return
    for key, value in annotations.items():
        patch.set_member("/metadata/annotations", current, key, value)
