"""Cluster-wide injection values: what the chart decides, per-pod overrides aside.

The chart renders these into the injection ConfigMap as ``values.json`` next to
the template; the webhook reloads both. Everything a platform team may tune
without touching the template lives here; everything about the shape of the
injected container lives in the template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["InjectionValues", "ValuesError"]


class ValuesError(ValueError):
    """values.json is not what the chart renders (unknown key, wrong type)."""


@dataclass(frozen=True, slots=True)
class InjectionValues:
    image: str = "ghcr.io/switchman-dev/switchman-sidecar:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    #: The sidecar's application port on 127.0.0.1 (the SDK base URLs point here).
    port: int = 4000
    #: The sidecar's admin port (/healthz, /readyz, /metrics), probed by the kubelet.
    admin_port: int = 15000
    log_level: str = "info"
    #: Requests sized for a proxy that mostly waits on providers; limits cap a runaway.
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    cpu_limit: str | None = None
    memory_limit: str | None = "256Mi"
    #: host:port of the operator's gRPC service, as sidecars resolve it.
    operator_address: str = "switchman-operator.switchman-system.svc:15010"
    #: Audience of the projected ServiceAccount token the operator verifies.
    audience: str = "switchman"
    #: Lifetime of that token; the kubelet refreshes it at 80 %.
    token_expiration_seconds: int = 3600
    #: Namespaces never injected (the operator's own namespace is added at start-up).
    excluded_namespaces: tuple[str, ...] = field(
        default=("kube-system", "kube-public", "kube-node-lease")
    )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> InjectionValues:
        """Strict: a typo in the chart must not silently fall back to a default."""
        known = {_camel(f.name): f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValuesError(f"unknown injection values: {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            f = known[key]
            default = getattr(cls(), f.name)
            if f.name == "excluded_namespaces":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValuesError("excludedNamespaces must be a list of names")
                value = tuple(value)
            elif value is None and default is None:
                pass
            elif isinstance(default, bool) or not isinstance(
                value, type(default) if default is not None else str
            ):
                raise ValuesError(f"{key} must be a {type(default or '').__name__}")
            kwargs[f.name] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> InjectionValues:
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValuesError(f"values.json is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValuesError("values.json must be an object")
        return cls.from_mapping(data)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
