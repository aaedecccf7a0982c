"""The three PATCH formats of the API: JSON patch, JSON merge patch and strategic merge patch.

Strategic merge merges lists of objects by their merge key where the Kubernetes types declare one
(containers by name, conditions by type, ...) and honours ``$patch: delete|replace`` and ignores
``$setElementOrder``; other lists are replaced, as the real API does for them.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.emulator.errors import bad_request, unsupported_media_type

Obj = dict[str, Any]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

# list field name → merge key, for the Kubernetes types the tests touch
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "conditions": "type",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
    "finalizers": "",  # a set of strings: merged, not replaced
    "podIPs": "ip",
    "hostAliases": "ip",
    "addresses": "type",
}


def apply_patch(target: Obj, patch: Any, content_type: str) -> Obj:
    """A new object: ``target`` with ``patch`` applied. Raises 400/415 ApiErrors like the API."""
    media = content_type.split(";", maxsplit=1)[0].strip()
    if media == JSON_PATCH:
        return _json_patch(target, patch)
    if not isinstance(patch, dict):
        raise bad_request("the body of a merge patch must be a JSON object")
    if media not in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        raise unsupported_media_type(media)
    merge = _merge if media == MERGE_PATCH else _strategic
    result: Obj = merge(copy.deepcopy(target), patch)
    return result


def _json_patch(target: Obj, patch: Any) -> Obj:
    import jsonpatch

    if not isinstance(patch, list):
        raise bad_request("json patch must be a JSON array of operations")
    try:
        result = jsonpatch.JsonPatch(patch).apply(target, in_place=False)
    except (
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        TypeError,
        KeyError,
    ) as error:
        raise bad_request(
            f"the server rejected our request due to an error in our request: {error}"
        ) from None
    if not isinstance(result, dict):
        raise bad_request("json patch replaced the whole object with a non-object")
    return result


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target


def _strategic(target: Any, patch: Any, field: str = "") -> Any:
    if isinstance(patch, list):
        return _strategic_list(target, patch, field)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in {"$retainKeys", "$patch"}:
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            target[name] = [v for v in target.get(name) or [] if v not in value]
            continue
        if value is None:
            target.pop(key, None)
            continue
        merged = _strategic(target.get(key), value, key)
        if merged is None:
            target.pop(key, None)
        else:
            target[key] = merged
    return target


def _strategic_list(target: Any, patch: list[Any], field: str) -> list[Any]:
    current = list(target) if isinstance(target, list) else []
    if field not in MERGE_KEYS:
        return copy.deepcopy(patch)
    key = MERGE_KEYS[field]
    if not key:  # a set of primitives
        return current + [v for v in patch if v not in current]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item!r} does not contain declared merge key: {key}")
        index = next(
            (
                i
                for i, old in enumerate(current)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                current.pop(index)
        elif index is None:
            current.append(_strategic({}, item))
        else:
            current[index] = _strategic(current[index], item)
    return current
