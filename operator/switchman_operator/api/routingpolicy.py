"""RoutingPolicy: which pods it applies to, the team they charge, how to route."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import (
    DURATION_PATTERN,
    LIST_MAP,
    NAME_PATTERN,
    ConfigMapKeyRef,
    LabelSelector,
    Schema,
    StatusBase,
    cel,
)

Strategy = Literal["cost", "quality", "balanced", "latency"]
PiiAction = Literal["allow", "redact", "mask", "hash", "block", "route-compliant"]
PiiEntity = Literal[
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "PERSON",
    "STREET_ADDRESS",
    "LOCATION",
]


class Reject(Schema):
    message: str = Field(min_length=1, max_length=1024)


class Ensemble(Schema):
    models: list[str] = Field(min_length=2, max_length=8)
    aggregate: Literal["vote", "judge"] = "vote"
    judge_model: str | None = None


class Rule(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.routeTo) || has(self.strategy) || has(self.allowedModels) "
                    "|| has(self.reject) || has(self.ensemble) || has(self.maxOutputTokens)",
                    "a rule needs an action: routeTo, strategy, allowedModels, reject, "
                    "ensemble or maxOutputTokens",
                ),
                cel(
                    "!(has(self.routeTo) && has(self.reject))",
                    "a rule cannot both routeTo and reject",
                ),
            ]
        }
    )
    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    when: str = Field(
        min_length=1,
        max_length=4096,
        description="CEL over request, budget and time, "
        'e.g. request.headers["x-tier"] == "premium".',
    )
    route_to: str | None = Field(default=None, description="A model or alias.")
    strategy: Strategy | None = None
    allowed_models: list[str] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    reject: Reject | None = None
    ensemble: Ensemble | None = None


class Fallback(Schema):
    model: str = Field(min_length=1)
    to: list[str] = Field(min_length=1, max_length=8)


class CircuitBreaker(Schema):
    consecutive_failures: int = Field(default=5, ge=1, le=1000)
    ejection_time: str = Field(default="30s", pattern=DURATION_PATTERN)
    half_open_requests: int = Field(default=1, ge=1, le=100)


class Retries(Schema):
    attempts: int = Field(default=2, ge=0, le=10)
    per_try_timeout: str = Field(default="30s", pattern=DURATION_PATTERN)
    total_timeout: str = Field(default="120s", pattern=DURATION_PATTERN)
    backoff_base: str = Field(default="100ms", pattern=DURATION_PATTERN)
    backoff_max: str = Field(default="5s", pattern=DURATION_PATTERN)


class LearnedRouter(Schema):
    model_ref: ConfigMapKeyRef = Field(description="ConfigMap key holding a trained router.")
    quality_bar: float | None = Field(default=None, ge=0, le=1)
    cost_weight: float | None = Field(
        default=None, ge=0, le=1, description="Cost/quality trade-off instead of a bar."
    )
    learn_from_feedback: bool = False


class Cascade(Schema):
    models: list[str] = Field(min_length=2, max_length=5, description="Cheapest first.")
    check: Literal["logprobs", "self-check", "verifier", "json"] = "logprobs"
    threshold: float = Field(default=0.7, ge=0, le=1)
    verifier_model: str | None = None


class OutputBudget(Schema):
    choices: list[int] = Field(min_length=1, max_length=16, description="Max-output budgets.")


class CustomEntity(Schema):
    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=63)
    regex: str = Field(min_length=1, max_length=1024)
    # Exactly the sidecar's pii.validators.VALIDATORS (tests/pii checks they agree).
    validator: Literal["none", "luhn", "iban", "ssn", "ip", "mod11"] = "none"
    context: list[str] | None = None


class Pii(Schema):
    enabled: bool = True
    default_action: PiiAction = "redact"
    entities: dict[str, PiiAction] | None = Field(
        default=None, description="Action per entity type (built-in or custom)."
    )
    custom: list[CustomEntity] | None = None
    compliant_tags: list[str] | None = Field(
        default=None, description="Model compliance tags that may see PII (route-compliant)."
    )


class Cache(Schema):
    enabled: bool = False
    ttl: str = Field(default="5m", pattern=DURATION_PATTERN)
    max_entries: int = Field(default=1000, ge=1, le=1_000_000)


class Shadow(Schema):
    model: str
    sample_rate: float = Field(ge=0, le=1)
    max_spend: float | None = Field(default=None, ge=0, description="USD per budget period.")


class RoutingPolicySpec(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.qualityBar) || self.strategy != 'cost' || has(self.router)",
                    "qualityBar needs strategy quality/balanced/latency or a router",
                ),
            ]
        }
    )
    team: str = Field(pattern=NAME_PATTERN, max_length=63)
    selector: LabelSelector | None = Field(
        default=None, description="Pods in this namespace; empty selects all."
    )
    pools: list[str] = Field(min_length=1, max_length=16)
    aliases: dict[str, str] | None = None
    strategy: Strategy = "balanced"
    quality_bar: float | None = Field(default=None, ge=0, le=1)
    rules: list[Rule] | None = Field(default=None, max_length=64, json_schema_extra=LIST_MAP)
    router: LearnedRouter | None = None
    cascade: Cascade | None = None
    output_budget: OutputBudget | None = None
    fallbacks: list[Fallback] | None = None
    retries: Retries | None = None
    circuit_breaker: CircuitBreaker | None = None
    pii: Pii | None = None
    cache: Cache | None = None
    shadow: Shadow | None = None


class Rejection(Schema):
    sidecar: str
    message: str
    time: str | None = None


class RoutingPolicyStatus(StatusBase):
    compiled_version: str | None = None
    targeted_sidecars: int | None = None
    acknowledged_sidecars: int | None = None
    synced: str | None = Field(default=None, description="acknowledged/targeted, e.g. 3/3.")
    last_rejection: Rejection | None = None
