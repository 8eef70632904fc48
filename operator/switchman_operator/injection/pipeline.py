"""Injection as one pure call: should inject? → overrides → render → merge → patch.

The webhook (I/O) turns an AdmissionReview into these arguments and the
outcome back into an AdmissionReview; golden tests call ``inject`` directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .annotations import ANNOTATION_APP_ENV
from .decide import should_inject
from .merge import merge
from .overrides import apply_overrides
from .patch import json_patch
from .render import Template, render
from .values import InjectionValues

__all__ = ["Outcome", "inject"]


@dataclass(frozen=True, slots=True)
class Outcome:
    #: False: refuse the pod, ``message`` says why (a malformed annotation).
    allowed: bool
    injected: bool
    message: str
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pod: Mapping[str, Any] | None = None


def inject(
    pod: Mapping[str, Any],
    namespace: str,
    *,
    namespace_enabled: bool,
    template: Template,
    values: InjectionValues,
    operator_ca: str | None,
    operator_namespace: str = "",
) -> Outcome:
    decision = should_inject(pod, namespace, namespace_enabled, values, operator_namespace)
    if decision.error:
        return Outcome(False, False, decision.error)
    if not decision.inject:
        return Outcome(True, False, decision.reason, pod=pod)
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    pod_values, problems = apply_overrides(values, annotations)
    if problems:
        return Outcome(False, False, "switchman injection refused: " + "; ".join(problems))
    clashes = _port_clashes(pod, pod_values)
    if clashes:
        return Outcome(False, False, "switchman injection refused: " + "; ".join(clashes))
    rendered = render(template, pod_values, operator_ca)
    app_env = str(annotations.get(ANNOTATION_APP_ENV, "true")).strip().lower() != "false"
    injected, notes = merge(pod, rendered, app_env=app_env)
    return Outcome(True, True, decision.reason, json_patch(pod, injected), notes, injected)


def _port_clashes(pod: Mapping[str, Any], values: InjectionValues) -> list[str]:
    """App containers share the pod's network namespace: the sidecar's ports must be free."""
    ours = {values.port: "application", values.admin_port: "admin"}
    out = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            number = port.get("containerPort")
            if number in ours:
                out.append(
                    f"container {container.get('name')} uses port {number}, the sidecar's "
                    f"{ours[number]} port (set switchman.io/proxy-port to move the sidecar)"
                )
    return out
