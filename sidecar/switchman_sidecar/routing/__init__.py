"""Route decisions: which model answers a request, and why.

This is the contract the request pipeline uses. ``Router`` is built once per
route table (building it compiles rules and checks the table: a ValueError
means the table is rejected and NACKed) and ``decide`` is called once per
request on the hot path. See docs/routing.md.
"""

from __future__ import annotations

from switchman_sidecar import _compiled

_compiled.extend(__path__, "routing")  # compiled modules first, when built
# ruff: noqa: E402 (the imports below must see the extended __path__)

from .cascade import Check, check_json, check_logprobs, parse_confidence, verification_messages
from .ensemble import ShadowGate, Vote, judge_messages, parse_judge, vote
from .router import AUTO, Router
from .types import BudgetView, CascadePlan, EnsemblePlan, RouteDecision, RouteRequest

__all__ = [
    "AUTO",
    "BudgetView",
    "CascadePlan",
    "Check",
    "EnsemblePlan",
    "RouteDecision",
    "RouteRequest",
    "Router",
    "ShadowGate",
    "Vote",
    "check_json",
    "check_logprobs",
    "judge_messages",
    "parse_confidence",
    "parse_judge",
    "verification_messages",
    "vote",
]
