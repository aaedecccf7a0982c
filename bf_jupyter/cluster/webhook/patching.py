"""JSONPatch (RFC 6902) operations at field granularity, from the values a rule wants.

``jsonpatch.make_patch`` diffs whole pods element by element (about a millisecond per pod, and a
wrapped command comes out as a dozen index-shifting inserts). The mutating rule knows which fields it
changes, so it states the new value of each and this builder writes one ``add``, ``replace`` or
``remove`` per field, against the object as received, with pointers escaped by ``jsonpointer`` (the
jsonpatch library's own). Loading the operations into ``jsonpatch.JsonPatch`` would cost a third of
a mutation on the admission hot path, so the tests do that instead: every patch they see, including
10,000 fuzzed ones, is applied with ``jsonpatch.apply_patch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonpointer import escape

__all__ = ["REMOVE", "PatchBuilder", "pointer"]

REMOVE = object()  # the value meaning "delete this member"


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) to ``parts``: ``~`` and ``/`` inside a part are escaped."""
    return "".join([f"/{escape(p) if isinstance(p, str) else p}" for p in parts])


class PatchBuilder:
    """Collects operations; each call compares with the current value so no-ops are left out."""

    def __init__(self) -> None:
        self._ops: list[dict[str, Any]] = []

    def set_member(self, path: str, parent: Mapping[str, Any], key: str, value: Any) -> None:
        """Make ``parent[key]`` (``parent`` found at ``path``) equal ``value``, or delete it for ``REMOVE``."""
        where = f"{path}/{escape(key)}"
        if value is REMOVE:
            if key in parent:
                self._ops.append({"op": "remove", "path": where})
        elif key not in parent:
            self._ops.append({"op": "add", "path": where, "value": value})
        elif parent[key] != value:
            self._ops.append({"op": "replace", "path": where, "value": value})

    def set_named_items(
        self, path: str, parent: Mapping[str, Any], key: str, items: list[dict[str, Any]]
    ) -> None:
        """Make each of ``items`` present in the list ``parent[key]``, matched by ``name``: an item
        with the same name is replaced where it is, a new one appended; a missing list is created."""
        current = parent.get(key)
        if not isinstance(current, list):
            self.set_member(path, parent, key, list(items))
            return
        where = {
            item.get("name"): index for index, item in enumerate(current) if isinstance(item, dict)
        }
        for item in items:
            index = where.get(item["name"])
            if index is None:
                self._ops.append({"op": "add", "path": f"{path}/{escape(key)}/-", "value": item})
            elif current[index] != item:
                self._ops.append(
                    {"op": "replace", "path": f"{path}/{escape(key)}/{index}", "value": item}
                )

    def build(self) -> tuple[dict[str, Any], ...]:
        """The operations, in order."""
        return tuple(self._ops)
