"""Stage 1 of injection: should this pod get the sidecar?

Pure: the pod, its namespace, whether that namespace is labelled for
injection (the API server already knows, through the webhook's
namespaceSelector, so the webhook learns it from the path it is called on and
never has to read Namespaces) and the values. The first rule that matches
decides, and the reason is kept for logs and the admission response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .annotations import ANNOTATION_INJECT, NAMESPACE_LABEL
from .values import InjectionValues

__all__ = ["Decision", "should_inject"]


@dataclass(frozen=True, slots=True)
class Decision:
    inject: bool
    reason: str
    #: A problem with the request itself (a malformed opt-in): the pod is refused.
    error: str = ""


def should_inject(
    pod: Mapping[str, Any],
    namespace: str,
    namespace_enabled: bool,
    values: InjectionValues,
    operator_namespace: str = "",
) -> Decision:
    spec = pod.get("spec") or {}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    excluded = {*values.excluded_namespaces, operator_namespace} - {""}
    if namespace in excluded:
        return Decision(False, f"namespace {namespace} is never injected")
    if spec.get("hostNetwork"):
        return Decision(False, "hostNetwork pods share the node's loopback; not injected")
    raw = annotations.get(ANNOTATION_INJECT)
    if raw is not None:
        value = str(raw).strip().lower()
        if value == "false":
            return Decision(False, f"opted out by {ANNOTATION_INJECT}=false")
        if value == "true":
            return Decision(True, f"asked for by {ANNOTATION_INJECT}=true")
        return Decision(
            False,
            "malformed opt-in",
            error=f'annotation {ANNOTATION_INJECT} must be "true" or "false", got {raw!r}',
        )
    if namespace_enabled:
        return Decision(True, f"namespace {namespace} is labelled {NAMESPACE_LABEL}=enabled")
    return Decision(False, "neither the pod nor its namespace asks for injection")
