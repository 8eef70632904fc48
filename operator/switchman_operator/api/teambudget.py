"""TeamBudget: a team's spend ceiling per period and what happens near it."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import NAME_PATTERN, RateLimits, Schema, StatusBase, cel


class TeamBudgetSpec(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(self.softAction == 'downgrade' || self.hardAction == 'downgrade') "
                    "|| has(self.downgradeModel)",
                    "downgradeModel is required when an action is downgrade",
                    ".downgradeModel",
                ),
            ]
        }
    )
    team: str = Field(pattern=NAME_PATTERN, max_length=63)
    period: Literal["day", "week", "month"] = "month"
    limit: float = Field(gt=0, le=1e9, description="USD per period.")
    soft_limit_percent: int = Field(default=80, ge=1, le=100)
    soft_action: Literal["alert", "downgrade"] = "alert"
    hard_action: Literal["block", "downgrade"] = "block"
    downgrade_model: str | None = None
    token_limit: int | None = Field(default=None, ge=1, description="Tokens per period.")
    rate_limits: RateLimits | None = None


class ModelSpend(Schema):
    spent: float = 0
    spent_micros: int = Field(default=0, description="Exact spend in micro-USD.")
    tokens_in: int = 0
    tokens_out: int = 0
    requests: int = 0


class TeamBudgetStatus(StatusBase):
    state: Literal["Ok", "SoftLimited", "Exhausted"] | None = None
    period_start: str | None = None
    spent: float | None = None
    spent_micros: int | None = Field(default=None, description="Exact spend in micro-USD.")
    remaining: float | None = None
    percent_used: float | None = None
    percent_used_text: str | None = Field(default=None, description="percentUsed for kubectl.")
    tokens_in: int | None = None
    tokens_out: int | None = None
    requests: int | None = None
    by_model: dict[str, ModelSpend] | None = None
    sequences: dict[str, int] | None = Field(
        default=None,
        description="Highest usage batch sequence counted per sidecar boot (exactly-once).",
    )
