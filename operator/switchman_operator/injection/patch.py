"""Stage 4 of injection: the RFC 6902 JSON patch the API server applies.

Whole fields are added or replaced (annotations, init containers, containers,
volumes): a patch of a few operations that is easy to read in an audit log,
and correct whatever the API server's defaulting did to the object in between.
Identical fields produce no operation, so an injected pod yields an empty patch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["PATCHED_FIELDS", "json_patch"]

PATCHED_FIELDS = (
    ("metadata", "annotations"),
    ("spec", "initContainers"),
    ("spec", "containers"),
    ("spec", "volumes"),
)


def json_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for parent, name in PATCHED_FIELDS:
        old_parent = before.get(parent)
        new_value = (after.get(parent) or {}).get(name)
        if new_value is None:
            continue
        if old_parent is None:
            ops.append({"op": "add", "path": f"/{parent}", "value": {name: new_value}})
            continue
        if name not in old_parent:
            ops.append({"op": "add", "path": f"/{parent}/{name}", "value": new_value})
        elif old_parent[name] != new_value:
            ops.append({"op": "replace", "path": f"/{parent}/{name}", "value": new_value})
    return ops
