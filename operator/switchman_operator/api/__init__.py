"""API types of the Switchman custom resources (group switchman.io, v1alpha1)."""

from .common import API_VERSION, GROUP, VERSION, Condition
from .modelpool import ModelPoolSpec, ModelPoolStatus, ModelSpec
from .routingpolicy import RoutingPolicySpec, RoutingPolicyStatus
from .teambudget import TeamBudgetSpec, TeamBudgetStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "ModelPoolSpec",
    "ModelPoolStatus",
    "ModelSpec",
    "RoutingPolicySpec",
    "RoutingPolicyStatus",
    "TeamBudgetSpec",
    "TeamBudgetStatus",
]
