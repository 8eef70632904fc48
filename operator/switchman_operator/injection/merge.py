"""Stage 3 of injection: the rendered pieces merged into the pod.

Merging replaces by name, so merging the same rendering twice gives the same
pod (injection is idempotent, including webhook reinvocation):
* the sidecar goes first among the init containers (a native sidecar, so it
  is up before later init containers and the app, and stops after them);
* volumes with the template's names are replaced, others kept;
* app containers get the SDK variables they do not set themselves;
* annotations are set.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .render import Rendered

__all__ = ["merge"]


def merge(
    pod: Mapping[str, Any], rendered: Rendered, app_env: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """The injected pod (a new object) and notes about what was left as the user set it."""
    out: dict[str, Any] = copy.deepcopy(dict(pod))
    notes: list[str] = []
    spec = out.setdefault("spec", {})
    name = rendered.sidecar["name"]

    inits = [c for c in spec.get("initContainers") or [] if c.get("name") != name]
    spec["initContainers"] = [copy.deepcopy(rendered.sidecar), *inits]

    ours = {v["name"] for v in rendered.volumes}
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in ours]
    spec["volumes"] = [*volumes, *copy.deepcopy(rendered.volumes)]

    if app_env:
        for container in spec.get("containers") or []:
            env = container.setdefault("env", [])
            have = {e.get("name") for e in env}
            for var in rendered.app_env:
                if var["name"] in have:
                    if not _ours(env, var):
                        notes.append(
                            f"container {container.get('name')} sets {var['name']} itself; "
                            "left as is"
                        )
                    continue
                env.append(copy.deepcopy(var))
            if not env:
                del container["env"]

    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), **rendered.annotations}
    return out, notes


def _ours(env: list[dict[str, Any]], var: Mapping[str, Any]) -> bool:
    return any(e == var for e in env)
