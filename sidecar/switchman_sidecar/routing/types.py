"""The routing contract: what the pipeline asks (``RouteRequest``) and what it
gets back (``RouteDecision``). Fields are only ever added, with defaults, so the
pipeline written against the first version keeps working."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["BudgetView", "CascadePlan", "EnsemblePlan", "RouteDecision", "RouteRequest"]


@dataclass(frozen=True, slots=True)
class BudgetView:
    """What routing may know about the team's budget."""

    state: str = "Ok"  # Ok | SoftLimited | Exhausted
    percent_used: float = 0.0


@dataclass(slots=True)
class RouteRequest:
    model: str
    """The model (or alias) the client asked for; ``auto`` lets the router choose."""
    api: str = "chat"
    """chat | messages | embeddings | responses"""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Request headers, names lower-cased."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    prompt_text: str = ""
    """The text of the request after PII redaction (for classifiers)."""
    input_tokens: int = 0
    """Estimated input tokens."""
    max_output_tokens: int | None = None
    needs: frozenset[str] = frozenset()
    """Capabilities the request needs: tools, vision, json."""
    pii_types: frozenset[str] = frozenset()
    budget: BudgetView = field(default_factory=BudgetView)
    request_id: str = ""
    """Used for the shadow sample (deterministic per request id when set)."""
    now: float | None = None
    """Unix time for CEL ``now``/``time``; None means the wall clock."""


@dataclass(frozen=True, slots=True)
class CascadePlan:
    """Try ``models`` in order; accept an answer when ``check`` passes ``threshold``.

    How to run it: docs/routing.md, "Cascades". Every attempt is a usage record.
    """

    models: tuple[str, ...]
    check: str
    """json | logprob | self_check | verifier"""
    threshold: float
    verifier_model: str | None = None


@dataclass(frozen=True, slots=True)
class EnsemblePlan:
    """Fan out to ``models`` and aggregate (``vote`` or ``judge``)."""

    models: tuple[str, ...]
    aggregate: str = "vote"
    judge_model: str | None = None


@dataclass(slots=True)
class RouteDecision:
    candidates: list[str]
    """Model names in the order to try them: the first answers, the rest are fallbacks."""
    reason: str
    """Short machine-readable reason, e.g. ``rule:premium``, ``router``, ``strategy:cost``."""
    strategy: str = ""
    rule: str | None = None
    score: float | None = None
    """The chosen model's predicted chance of a good answer (learned router) or
    its strategy utility."""
    task_kind: str = ""
    max_output_tokens: int | None = None
    """Cap on the upstream request's output tokens (rule cap or output budget)."""
    cascade: list[str] | None = None
    """Models of the cascade, cheapest first (see ``cascade_plan``)."""
    shadow_model: str | None = None
    """Also send this request to this model, off the client's path, not charged."""
    ensemble: list[str] | None = None
    reject: str | None = None
    """When set, the request is refused with this message."""
    cascade_plan: CascadePlan | None = None
    ensemble_plan: EnsemblePlan | None = None
    scores: dict[str, float] = field(default_factory=dict)
    """Per-candidate score behind the choice (explain)."""
    explanation: list[str] = field(default_factory=list)
    """Human-readable steps: which rule matched, what was filtered out, why."""
