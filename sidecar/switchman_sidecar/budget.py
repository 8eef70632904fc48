"""Budget admission in the sidecar (DESIGN §6): reserve before sending, settle after.

The pipeline calls ``admit`` with the worst-case cost of a request (input
estimate plus max output at the dearest candidate's prices) before it is sent
and ``settle`` with the exact cost afterwards. The operator pushes the team's
BudgetState; its ``allowance`` is this sidecar's slice of what remains.

What this sidecar may still commit is ``allowance - reserved - unreported``:
``reserved`` are open reservations, ``unreported`` is settled spend the
operator has not yet acknowledged counting (the usage reporter calls
``reported`` as ACKs arrive). Spend the operator already counted is in the
state's ``spent``/``remaining`` and leaves ``unreported`` on its ACK, so it is
never subtracted twice for long. Because the slices of all of a team's
sidecars add up to at most what remains, the team can overspend its hard
limit only by what changed between two pushes of the state (one allowance per
sidecar at most), and not at all while the operator is unreachable: the old
allowance then runs out and requests are refused (or downgraded).

No state (no TeamBudget for the team, or not connected yet) → admit.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchman_protocol.v1 import budget_pb2

__all__ = ["Admission", "BudgetGate"]

_STATE_NAMES = {
    budget_pb2.BUDGET_CONDITION_OK: "Ok",
    budget_pb2.BUDGET_CONDITION_SOFT_LIMITED: "SoftLimited",
    budget_pb2.BUDGET_CONDITION_EXHAUSTED: "Exhausted",
}


@dataclass(slots=True)
class Admission:
    allowed: bool
    reservation: float = 0.0
    downgrade_model: str | None = None
    reason: str = ""
    state: str = "Ok"
    percent_used: float = 0.0


class BudgetGate:
    def __init__(self) -> None:
        self.state: budget_pb2.BudgetState | None = None
        self.reserved = 0.0
        self.unreported = 0.0
        self.refused = 0

    def update(self, state: budget_pb2.BudgetState) -> None:
        self.state = state

    def reported(self, cost: float) -> None:
        """The operator acknowledged counting ``cost`` of settled spend."""
        self.unreported = max(0.0, self.unreported - cost)

    def headroom(self) -> float | None:
        """USD this sidecar may still commit, or None when unlimited."""
        s = self.state
        if s is None:
            return None
        return s.allowance - self.reserved - self.unreported

    def admit(self, team: str, worst_case_cost: float) -> Admission:
        s = self.state
        if s is None or (s.team and team and s.team != team):
            return Admission(allowed=True, reservation=worst_case_cost)
        percent = s.percent_used
        tokens_out = s.token_limit > 0 and s.tokens_used >= s.token_limit
        headroom = s.allowance - self.reserved - self.unreported
        exhausted = (
            s.condition == budget_pb2.BUDGET_CONDITION_EXHAUSTED
            or tokens_out
            or worst_case_cost > headroom
        )
        if exhausted:
            if s.hard_action == budget_pb2.BUDGET_ACTION_DOWNGRADE and s.downgrade_model:
                return self._reserve(
                    worst_case_cost,
                    Admission(
                        allowed=True,
                        downgrade_model=s.downgrade_model,
                        reason="budget exhausted: downgraded",
                        state="Exhausted",
                        percent_used=percent,
                    ),
                )
            self.refused += 1
            why = (
                "its token limit is used up"
                if tokens_out
                else f"it has spent {percent:.1f}% of ${s.limit:g} this period"
                if s.condition == budget_pb2.BUDGET_CONDITION_EXHAUSTED
                else f"this request's worst-case cost ${worst_case_cost:.6f} exceeds what is "
                f"left of the pod's share (${max(0.0, headroom):.6f})"
            )
            return Admission(
                allowed=False,
                reason=f"team {s.team!r} budget exhausted: {why}",
                state="Exhausted",
                percent_used=percent,
            )
        soft = s.condition == budget_pb2.BUDGET_CONDITION_SOFT_LIMITED or (
            s.soft_threshold_percent > 0 and percent >= s.soft_threshold_percent
        )
        admission = Admission(
            allowed=True,
            state="SoftLimited" if soft else _STATE_NAMES.get(s.condition, "Ok"),
            percent_used=percent,
        )
        if soft and s.soft_action == budget_pb2.BUDGET_ACTION_DOWNGRADE and s.downgrade_model:
            admission.downgrade_model = s.downgrade_model
            admission.reason = "budget soft limit: downgraded"
        return self._reserve(worst_case_cost, admission)

    def _reserve(self, cost: float, admission: Admission) -> Admission:
        admission.reservation = cost
        self.reserved += cost
        return admission

    def settle(self, admission: Admission, actual_cost: float) -> None:
        """Release the reservation and account the exact cost until the operator counts it."""
        if not admission.allowed:
            return
        self.reserved = max(0.0, self.reserved - admission.reservation)
        admission.reservation = 0.0  # settling twice must not release twice
        self.spent(actual_cost)

    def spent(self, cost: float) -> None:
        """Spend without a reservation: counted until the operator acknowledges it."""
        if self.state is not None:
            self.unreported += cost
