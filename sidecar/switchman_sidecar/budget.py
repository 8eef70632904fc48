"""Budget admission in the sidecar (DESIGN §6): reserve before sending, settle after.

The pipeline calls ``admit`` with the worst-case cost of a request (input
estimate plus max output at the dearest candidate's prices) before it is sent
and ``settle`` with the exact cost afterwards. The operator pushes the team's
BudgetState; its ``allowance`` is this sidecar's slice of what remains.

What this sidecar may still commit is
``allowance - reserved - unreported - uncounted``: ``reserved`` are open
reservations, ``unreported`` is settled spend the operator has not yet
acknowledged counting (the usage reporter calls ``reported`` as ACKs arrive),
``uncounted`` is acknowledged spend the current state does not include yet.
An ACK can overtake the (paced) push of the state that includes it; forgetting
the spend at the ACK let a busy sidecar spend its allowance again after every
ACK until the next push. The state's ``counted`` map (boot id → highest batch
sequence in its ``spent``) says when to forget it instead, so spend is
subtracted exactly once: locally until the state includes it, then through
``remaining``. An operator that does not fill ``counted`` (``counted_known``
false) gets the old behaviour. Because the slices of all of a team's sidecars
add up to at most what remains, the team can overspend its hard limit only by
what changed between two pushes of the state (slices computed from an older
``remaining``), and not at all while the operator is unreachable: the old
allowance then runs out and requests are refused (or downgraded).

No state (no TeamBudget for the team, or not connected yet) → admit.
"""

from __future__ import annotations

from collections.abc import Callable
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
        # Acknowledged batches the state's ``spent`` does not include yet: (boot, seq) -> cost.
        self.uncounted: dict[tuple[str, int], float] = {}
        self.refused = 0
        self.reclaim: Callable[[], None] | None = None
        """Frees what is reserved but not needed (the native lane's unused credit);
        ``admit`` calls it before refusing or downgrading for want of headroom."""
        self.on_update: list[Callable[[], None]] = []
        """Called after each state (the native lane's credit follows it, lane.py)."""

    def update(self, state: budget_pb2.BudgetState) -> None:
        self.state = state
        if not state.counted_known:
            self.uncounted.clear()
        else:
            for key in [k for k in self.uncounted if k[1] <= state.counted.get(k[0], 0)]:
                del self.uncounted[key]
        for callback in self.on_update:
            callback()

    def plainly_open(self, team: str) -> bool:
        """Nothing about the state would change a request: no state (or another
        team's), or one that is Ok, under its soft threshold and its token limit.
        (The native lane serves only then, holding a credit: lane.py.)"""
        s = self.state
        if s is None or (s.team and team and s.team != team):
            return True
        return (
            s.condition
            not in (budget_pb2.BUDGET_CONDITION_SOFT_LIMITED, budget_pb2.BUDGET_CONDITION_EXHAUSTED)
            and not (s.soft_threshold_percent > 0 and s.percent_used >= s.soft_threshold_percent)
            and not (s.token_limit > 0 and s.tokens_used >= s.token_limit)
        )

    def reported(self, cost: float, boot_id: str = "", sequence: int = 0) -> None:
        """The operator acknowledged counting batch ``sequence`` of boot ``boot_id``
        (``cost`` of settled spend); it stays subtracted until a state includes it."""
        self.unreported = max(0.0, self.unreported - cost)
        s = self.state
        if (
            s is not None
            and s.counted_known
            and boot_id
            and cost > 0
            and sequence > s.counted.get(boot_id, 0)
        ):
            self.uncounted[(boot_id, sequence)] = cost

    def _held(self) -> float:
        return self.reserved + self.unreported + sum(self.uncounted.values())

    def headroom(self) -> float | None:
        """USD this sidecar may still commit, or None when unlimited."""
        s = self.state
        if s is None:
            return None
        return s.allowance - self._held()

    def admit(self, team: str, worst_case_cost: float) -> Admission:
        s = self.state
        if s is None or (s.team and team and s.team != team):
            return Admission(allowed=True, reservation=worst_case_cost)
        percent = s.percent_used
        tokens_out = s.token_limit > 0 and s.tokens_used >= s.token_limit
        headroom = s.allowance - self._held()
        if worst_case_cost > headroom and self.reclaim is not None:
            self.reclaim()
            headroom = s.allowance - self._held()
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
