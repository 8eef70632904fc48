"""BudgetGate: reservation before send, settle after, soft/hard actions, bounded overspend."""

from __future__ import annotations

from switchman_protocol.v1 import budget_pb2 as b
from switchman_sidecar.budget import BudgetGate


def state(**kw: object) -> b.BudgetState:
    base: dict[str, object] = {
        "team": "web",
        "condition": b.BUDGET_CONDITION_OK,
        "limit": 10.0,
        "remaining": 10.0,
        "allowance": 1.0,
        "soft_threshold_percent": 80.0,
        "soft_action": b.BUDGET_ACTION_ALERT,
        "hard_action": b.BUDGET_ACTION_BLOCK,
    }
    base.update(kw)
    return b.BudgetState(**base)  # type: ignore[arg-type]


def test_no_state_admits_everything() -> None:
    gate = BudgetGate()
    assert gate.admit("web", 1e6).allowed


def test_reservations_bound_concurrent_spend_to_the_allowance() -> None:
    gate = BudgetGate()
    gate.update(state(allowance=1.0))
    admitted = [gate.admit("web", 0.3) for _ in range(5)]
    assert [a.allowed for a in admitted] == [True, True, True, False, False]
    assert "exceeds what is left" in admitted[3].reason
    # Settling with the (lower) real cost frees the difference...
    gate.settle(admitted[0], 0.1)
    assert gate.admit("web", 0.3).allowed
    # ...and settling twice frees nothing more.
    gate.settle(admitted[0], 0.1)
    assert abs(gate.reserved - 0.9) < 1e-9


def test_unreported_spend_counts_until_the_operator_acknowledges_it() -> None:
    gate = BudgetGate()
    gate.update(state(allowance=0.5))
    a = gate.admit("web", 0.4)
    gate.settle(a, 0.4)
    assert not gate.admit("web", 0.2).allowed  # 0.4 unreported + 0.2 > 0.5
    gate.reported(0.4)  # counted by the operator; the next state carries it in `spent`
    assert gate.admit("web", 0.2).allowed


def test_acknowledged_spend_stays_held_until_a_state_includes_it() -> None:
    """An ACK can overtake the paced push of the state with the new spend: the spend
    must neither vanish at the ACK (spent twice) nor count twice once the state has it."""
    gate = BudgetGate()
    gate.update(state(allowance=0.5, counted_known=True, counted={"boot-1": 3}))
    a = gate.admit("web", 0.4)
    gate.settle(a, 0.4)
    gate.reported(0.4, "boot-1", 4)  # batch 4 counted; this state predates it
    assert not gate.admit("web", 0.2).allowed  # still held: 0.4 + 0.2 > 0.5
    # A state that does not include batch 4 yet changes nothing...
    gate.update(state(allowance=0.5, counted_known=True, counted={"boot-1": 3}))
    assert not gate.admit("web", 0.2).allowed
    # ...one that does carries it in `remaining`/`allowance`, and it is released here.
    gate.update(state(allowance=0.1, counted_known=True, counted={"boot-1": 4}))
    assert gate.uncounted == {} and gate.headroom() == 0.1
    # Another boot's sequences never release this boot's spend.
    b2 = gate.admit("web", 0.05)
    gate.settle(b2, 0.05)
    gate.reported(0.05, "boot-1", 5)
    gate.update(state(allowance=0.1, counted_known=True, counted={"boot-0": 99, "boot-1": 4}))
    assert abs(gate.headroom() - 0.05) < 1e-12  # type: ignore[operator]


def test_an_operator_without_counted_gets_the_old_behaviour() -> None:
    gate = BudgetGate()
    gate.update(state(allowance=0.5))  # counted_known false
    a = gate.admit("web", 0.4)
    gate.settle(a, 0.4)
    gate.reported(0.4, "boot-1", 1)
    assert gate.uncounted == {} and gate.admit("web", 0.2).allowed


def test_exhausted_blocks_or_downgrades() -> None:
    gate = BudgetGate()
    gate.update(state(condition=b.BUDGET_CONDITION_EXHAUSTED, allowance=0.0, percent_used=100.0))
    refused = gate.admit("web", 0.01)
    assert not refused.allowed and refused.state == "Exhausted" and "100.0%" in refused.reason
    gate.update(
        state(
            condition=b.BUDGET_CONDITION_EXHAUSTED,
            allowance=0.0,
            hard_action=b.BUDGET_ACTION_DOWNGRADE,
            downgrade_model="mini",
        )
    )
    down = gate.admit("web", 0.01)
    assert down.allowed and down.downgrade_model == "mini"


def test_soft_limit_downgrades_only_when_asked() -> None:
    gate = BudgetGate()
    gate.update(state(condition=b.BUDGET_CONDITION_SOFT_LIMITED, percent_used=85.0))
    alert = gate.admit("web", 0.01)
    assert alert.allowed and alert.state == "SoftLimited" and alert.downgrade_model is None
    gate.update(
        state(
            condition=b.BUDGET_CONDITION_SOFT_LIMITED,
            soft_action=b.BUDGET_ACTION_DOWNGRADE,
            downgrade_model="mini",
        )
    )
    assert gate.admit("web", 0.01).downgrade_model == "mini"


def test_token_limit() -> None:
    gate = BudgetGate()
    gate.update(state(token_limit=100, tokens_used=100))
    assert not gate.admit("web", 0.0).allowed


def test_other_team_is_not_gated_by_this_state() -> None:
    gate = BudgetGate()
    gate.update(state(condition=b.BUDGET_CONDITION_EXHAUSTED, allowance=0.0))
    assert gate.admit("ml", 1.0).allowed
