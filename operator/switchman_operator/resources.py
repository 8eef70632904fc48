"""Typed snapshots of the objects the compiler reads.

Kubernetes bodies are parsed into these once, at the edge (the kopf handlers),
so that the compiler and the validators are pure functions over plain values
and can be golden-tested without a cluster.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .api import ModelPoolSpec, RoutingPolicySpec, TeamBudgetSpec, TeamBudgetStatus

__all__ = [
    "BudgetObject",
    "NamespaceResources",
    "PodInfo",
    "PolicyObject",
    "PoolObject",
    "configmap_data",
    "decode_secret",
    "parse_budget",
    "parse_policy",
    "parse_pool",
]


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the operator knows of a sidecar's pod (from TokenReview + a pod GET)."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    uid: str = ""
    service_account: str = "default"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class PolicyObject:
    namespace: str
    name: str
    spec: RoutingPolicySpec
    generation: int = 0
    created: str = ""  # RFC 3339 creationTimestamp; the oldest policy wins a conflict

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class PoolObject:
    namespace: str
    name: str
    spec: ModelPoolSpec
    generation: int = 0


@dataclass(frozen=True, slots=True)
class BudgetObject:
    namespace: str
    name: str
    spec: TeamBudgetSpec
    generation: int = 0
    created: str = ""
    status: TeamBudgetStatus = field(default_factory=TeamBudgetStatus)


@dataclass(frozen=True, slots=True)
class NamespaceResources:
    """Everything in one namespace that a route table may be compiled from."""

    pools: Mapping[str, PoolObject] = field(default_factory=dict)
    policies: Mapping[str, PolicyObject] = field(default_factory=dict)
    # Secret name -> key -> decoded value; only Secrets some pool references.
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    budgets: Mapping[str, BudgetObject] = field(default_factory=dict)
    # ConfigMap name -> key -> value; only those a policy's router references and the
    # operator's own learned-offset ConfigMaps (learning/feedback.py).
    configmaps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def budget_for(self, team: str) -> BudgetObject | None:
        """The TeamBudget usage of ``team`` is charged to: the oldest one naming it."""
        candidates = [b for b in self.budgets.values() if b.spec.team == team]
        return min(candidates, key=lambda b: (b.created, b.name), default=None)


def _meta(body: Mapping[str, Any]) -> tuple[str, str, int, str]:
    meta = body.get("metadata") or {}
    return (
        str(meta.get("namespace", "")),
        str(meta["name"]),
        int(meta.get("generation") or 0),
        str(meta.get("creationTimestamp") or ""),
    )


def parse_pool(body: Mapping[str, Any]) -> PoolObject:
    ns, name, gen, _ = _meta(body)
    return PoolObject(ns, name, ModelPoolSpec.model_validate(body.get("spec") or {}), gen)


def parse_policy(body: Mapping[str, Any]) -> PolicyObject:
    ns, name, gen, created = _meta(body)
    return PolicyObject(
        ns, name, RoutingPolicySpec.model_validate(body.get("spec") or {}), gen, created
    )


def parse_budget(body: Mapping[str, Any]) -> BudgetObject:
    ns, name, gen, created = _meta(body)
    spec = TeamBudgetSpec.model_validate(body.get("spec") or {})
    try:
        status = TeamBudgetStatus.model_validate(body.get("status") or {})
    except ValidationError:  # status written by a newer operator: ignore, it is rewritten
        status = TeamBudgetStatus()
    return BudgetObject(ns, name, spec, gen, created, status)


def decode_secret(body: Mapping[str, Any]) -> dict[str, str]:
    """``data`` (base64) and ``stringData`` of a Secret as text; undecodable keys are skipped."""
    out: dict[str, str] = {}
    for key, value in (body.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    for key, value in (body.get("stringData") or {}).items():
        out[key] = str(value)
    return out


def configmap_data(body: Mapping[str, Any]) -> dict[str, str]:
    """``data`` of a ConfigMap as text, and ``binaryData`` as the API gives it (base64:
    a gzipped router model lands there, decoded only when a policy reads it)."""
    out = {str(k): str(v) for k, v in (body.get("binaryData") or {}).items()}
    out.update((str(k), str(v)) for k, v in (body.get("data") or {}).items())
    return out
