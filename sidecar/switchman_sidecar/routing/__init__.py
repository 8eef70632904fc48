"""Route decisions: which model answers a request, and why.

This is the contract the request pipeline uses. ``Router`` is built once per
route table (building it compiles rules and checks the table: a ValueError
means the table is rejected and NACKed) and ``decide`` is called once per
request on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from switchman_protocol.v1 import routes_pb2

__all__ = ["BudgetView", "RouteDecision", "RouteRequest", "Router"]


@dataclass(frozen=True, slots=True)
class BudgetView:
    """What routing may know about the team's budget."""

    state: str = "Ok"  # Ok | SoftLimited | Exhausted
    percent_used: float = 0.0


@dataclass(slots=True)
class RouteRequest:
    model: str
    """The model (or alias) the client asked for."""
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


@dataclass(slots=True)
class RouteDecision:
    candidates: list[str]
    """Model names in the order to try them: the first answers, the rest are fallbacks."""
    reason: str
    """Short machine-readable reason, e.g. ``rule:premium``, ``router``, ``strategy:cost``."""
    strategy: str = ""
    rule: str | None = None
    score: float | None = None
    task_kind: str = ""
    max_output_tokens: int | None = None
    cascade: list[str] | None = None
    shadow_model: str | None = None
    ensemble: list[str] | None = None
    reject: str | None = None
    """When set, the request is refused with this message."""


class Router:
    """Baseline router: aliases, the requested model, then the table's order."""

    def __init__(self, table: routes_pb2.RouteTable) -> None:
        self._table = table
        self._models = {m.name: m for m in table.models}
        self._fallbacks = {f.model: list(f.fallbacks) for f in table.fallbacks}
        for alias, target in table.aliases.items():
            if target not in self._models:
                raise ValueError(f"alias {alias!r} points at unknown model {target!r}")

    def decide(self, request: RouteRequest) -> RouteDecision:
        name = self._table.aliases.get(request.model, request.model)
        if name in self._models:
            chain = [name, *[m for m in self._fallbacks.get(name, []) if m in self._models]]
            reason = "alias" if name != request.model else "requested"
            return RouteDecision(candidates=chain, reason=reason)
        return RouteDecision(candidates=[], reason="unknown-model")

    def observe(self, model: str, latency_ms: float, ok: bool) -> None:
        """Feed back one outcome (latency EWMA, error rate)."""
