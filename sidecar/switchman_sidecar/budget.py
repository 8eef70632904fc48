"""Budget admission in the sidecar (DESIGN §6).

The pipeline calls ``admit`` with the worst-case cost of a request before it is
sent and ``settle`` with the exact cost afterwards. The gate is fed the team's
BudgetState by the control-plane client. Baseline: no budget known → admit.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchman_protocol.v1 import budget_pb2

__all__ = ["Admission", "BudgetGate"]


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

    def update(self, state: budget_pb2.BudgetState) -> None:
        self.state = state

    def admit(self, team: str, worst_case_cost: float) -> Admission:
        return Admission(allowed=True, reservation=worst_case_cost)

    def settle(self, admission: Admission, actual_cost: float) -> None:
        """Release the reservation and account the exact cost."""
