"""Budget arithmetic: exactly-once by (pod, boot, sequence), periods, states."""

from __future__ import annotations

import datetime as dt

from switchman_operator.api import TeamBudgetSpec, TeamBudgetStatus
from switchman_operator.usage.accounting import (
    MAX_SEQUENCE_ENTRIES,
    Charge,
    apply_charges,
    budget_state,
    period_start,
)
from switchman_protocol.v1 import budget_pb2, usage_pb2

NOW = dt.datetime(2025, 3, 12, 15, 30, tzinfo=dt.UTC)
SPEC = TeamBudgetSpec.model_validate(
    {"team": "web", "limit": 1.0, "softLimitPercent": 50, "softAction": "alert"}
)


def rec(cost: float, model: str = "mini", tin: int = 10, tout: int = 5) -> usage_pb2.UsageRecord:
    return usage_pb2.UsageRecord(model=model, cost=cost, input_tokens=tin, output_tokens=tout)


def test_counts_each_sequence_once() -> None:
    c1 = Charge("pod-a", "boot1", 1, [rec(0.1), rec(0.2, "big")])
    c2 = Charge("pod-a", "boot1", 2, [rec(0.05)])
    status, counted = apply_charges(TeamBudgetStatus(), SPEC, [c1, c2], NOW)
    assert counted == [True, True]
    assert status.spent_micros == 350_000 and status.requests == 3
    # Resent after a lost ACK (or to another replica): nothing changes.
    again, counted = apply_charges(status, SPEC, [c1, c2], NOW)
    assert counted == [False, False] and again == status
    assert status.by_model is not None and status.by_model["mini"].spent_micros == 150_000
    assert status.tokens_in == 30 and status.tokens_out == 15
    assert status.percent_used_text == "35.0%" and status.state == "Ok"


def test_new_boot_counts_from_one_and_drops_the_old_boot() -> None:
    s, _ = apply_charges(TeamBudgetStatus(), SPEC, [Charge("pod-a", "b1", 7, [rec(0.1)])], NOW)
    s, counted = apply_charges(s, SPEC, [Charge("pod-a", "b2", 1, [rec(0.1)])], NOW)
    assert counted == [True]
    assert s.sequences == {"pod-a/b2": 1}
    assert s.spent_micros == 200_000


def test_states_and_remaining() -> None:
    s, _ = apply_charges(TeamBudgetStatus(), SPEC, [Charge("p", "b", 1, [rec(0.6)])], NOW)
    assert s.state == "SoftLimited" and s.remaining == 0.4
    s, _ = apply_charges(s, SPEC, [Charge("p", "b", 2, [rec(0.5)])], NOW)
    assert s.state == "Exhausted" and s.remaining == 0.0 and s.percent_used == 110.0
    state = budget_state("ns", SPEC, s, sidecars=4)
    assert state.condition == budget_pb2.BUDGET_CONDITION_EXHAUSTED
    assert state.hard_action == budget_pb2.BUDGET_ACTION_BLOCK and state.allowance == 0.0


def test_period_rolls_over_but_keeps_dedupe_state() -> None:
    s, _ = apply_charges(TeamBudgetStatus(), SPEC, [Charge("p", "b", 1, [rec(0.6)])], NOW)
    assert s.period_start == "2025-03-01T00:00:00Z"
    april = dt.datetime(2025, 4, 1, 0, 0, 1, tzinfo=dt.UTC)
    s2, counted = apply_charges(s, SPEC, [Charge("p", "b", 1, [rec(0.6)])], april)
    assert counted == [False]
    assert s2.spent_micros == 0 and s2.state == "Ok" and s2.period_start == "2025-04-01T00:00:00Z"
    assert s2.sequences == {"p/b": 1}


def test_period_starts() -> None:
    assert period_start("day", NOW) == dt.datetime(2025, 3, 12, tzinfo=dt.UTC)
    assert period_start("week", NOW) == dt.datetime(2025, 3, 10, tzinfo=dt.UTC)  # a Monday
    assert period_start("month", NOW) == dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def test_sequences_are_pruned_to_live_pods_when_too_many() -> None:
    charges = [Charge(f"pod-{i}", "b", 1, [rec(0.0)]) for i in range(MAX_SEQUENCE_ENTRIES + 5)]
    s, _ = apply_charges(TeamBudgetStatus(), SPEC, charges, NOW, live_pods=None)
    assert len(s.sequences or {}) == MAX_SEQUENCE_ENTRIES + 5
    s, _ = apply_charges(s, SPEC, [], NOW, live_pods={"pod-1", "pod-2"})
    assert s.sequences == {"pod-1/b": 1, "pod-2/b": 1}


def test_token_limit_exhausts() -> None:
    spec = SPEC.model_copy(update={"token_limit": 100})
    s, _ = apply_charges(
        TeamBudgetStatus(), spec, [Charge("p", "b", 1, [rec(0, tin=90, tout=10)])], NOW
    )
    assert s.state == "Exhausted"
