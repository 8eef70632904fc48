"""Resources → the RouteTable of one pod. Pure.

The sidecar never sees CRDs; this is the only place where they become its
contract. A pod gets the table of the one RoutingPolicy in its namespace that
selects it (the oldest, then by name, when several do — the Gateway API's
conflict rule), with exactly the models of that policy's pools and the
credentials of exactly those models. Nothing from another namespace.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from switchman_protocol.v1 import routes_pb2 as pb

from .api.modelpool import ModelSpec
from .api.routingpolicy import RoutingPolicySpec
from .learning.policy import decode_offsets, model_from_configmaps
from .resources import NamespaceResources, PodInfo, PolicyObject
from .selectors import selector_matches
from .validate import Problem, policy_model_names, validate_policy
from .world import LEARNED_SUFFIX

__all__ = [
    "CompileResult",
    "compile_route_table",
    "duration_ms",
    "select_policy",
    "table_version",
]

PROVIDERS = {
    "openai": pb.PROVIDER_OPENAI,
    "anthropic": pb.PROVIDER_ANTHROPIC,
    "gemini": pb.PROVIDER_GEMINI,
    "azure-openai": pb.PROVIDER_AZURE_OPENAI,
    "openai-compatible": pb.PROVIDER_OPENAI_COMPATIBLE,
}
STRATEGIES = {
    "cost": pb.STRATEGY_COST,
    "quality": pb.STRATEGY_QUALITY,
    "balanced": pb.STRATEGY_BALANCED,
    "latency": pb.STRATEGY_LATENCY,
}
PII_ACTIONS = {
    "allow": pb.PII_ACTION_ALLOW,
    "redact": pb.PII_ACTION_REDACT,
    "mask": pb.PII_ACTION_MASK,
    "hash": pb.PII_ACTION_HASH,
    "block": pb.PII_ACTION_BLOCK,
    "route-compliant": pb.PII_ACTION_ROUTE_COMPLIANT,
}
#: Public API base URLs used when a model names no endpoint (the sidecar requires one).
DEFAULT_ENDPOINTS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
}
CASCADE_CHECKS = {"logprobs": "logprob", "self-check": "self_check", "verifier": "verifier"}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True, slots=True)
class CompileResult:
    """``table`` is None when no policy selects the pod or the policy is not valid."""

    table: pb.RouteTable | None
    policy: str | None = None  # "namespace/name"
    problems: list[Problem] = field(default_factory=list)


def duration_ms(text: str) -> int:
    """A Go-style duration (``1m30s``, ``500ms``) in milliseconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"bad duration {text!r}")
    return round(sum(float(n) * _UNIT_MS[u] for n, u in parts))


def select_policy(pod: PodInfo, res: NamespaceResources) -> PolicyObject | None:
    matching = [
        p
        for p in res.policies.values()
        if p.namespace == pod.namespace and selector_matches(p.spec.selector, pod.labels)
    ]
    return min(matching, key=lambda p: (p.created, p.name), default=None)


def table_version(table: pb.RouteTable) -> str:
    """Content hash of the table (version field excluded), stable across processes."""
    copy = pb.RouteTable()
    copy.CopyFrom(table)
    copy.version = ""
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()[:16]


def compile_route_table(pod: PodInfo, res: NamespaceResources) -> CompileResult:
    policy = select_policy(pod, res)
    if policy is None:
        return CompileResult(None)
    problems = validate_policy(policy, res)
    if problems:
        return CompileResult(None, policy.key, problems)
    table = build_table(policy, res)
    table.version = table_version(table)
    return CompileResult(table, policy.key)


def build_table(policy: PolicyObject, res: NamespaceResources) -> pb.RouteTable:
    spec = policy.spec
    table = pb.RouteTable(
        namespace=policy.namespace,
        team=spec.team,
        policies=[policy.key],
        default_strategy=STRATEGIES[spec.strategy],
    )
    for name, pool_name in policy_model_names(policy, res.pools).items():
        pool = res.pools[pool_name]
        model = next(m for m in pool.spec.models if m.name == name)
        table.models.append(_model(policy.namespace, pool_name, model, res.secrets))
    table.aliases.update(spec.aliases or {})
    bar = spec.quality_bar
    if bar is None and spec.router is not None:
        bar = spec.router.quality_bar
    table.quality_bar = bar or 0.0
    for rule in spec.rules or []:
        out = pb.Rule(
            name=rule.name,
            when=rule.when,
            route_to=rule.route_to or "",
            strategy=STRATEGIES[rule.strategy] if rule.strategy else pb.STRATEGY_UNSPECIFIED,
            allowed_models=rule.allowed_models or [],
            max_output_tokens=rule.max_output_tokens or 0,
            reject=rule.reject.message if rule.reject else "",
        )
        if rule.ensemble:
            out.ensemble.CopyFrom(
                pb.Ensemble(
                    models=rule.ensemble.models,
                    aggregate=rule.ensemble.aggregate,
                    judge_model=rule.ensemble.judge_model or "",
                )
            )
        table.rules.append(out)
    for chain in spec.fallbacks or []:
        table.fallbacks.append(pb.FallbackChain(model=chain.model, fallbacks=chain.to))
    _resilience(spec, table.resilience)
    _pii(spec, table.pii)
    if spec.router is not None:
        table.router.kind = "learned"
        table.router.cost_weight = spec.router.cost_weight or 0.0
        ref = spec.router.model_ref
        trained = model_from_configmaps(res.configmaps, ref.name, ref.key)
        if not isinstance(trained, str):  # validate_policy refused the policy otherwise
            table.router.learned.CopyFrom(trained.learned)
        # Offsets learned from feedback (learning/feedback.py) ride on the model's params;
        # the sidecar reads only adj/<model>/<task>.
        offsets = decode_offsets(res.configmaps.get(policy.name + LEARNED_SUFFIX))
        table.router.learned.params.update(
            {k: v for k, v in offsets.items() if k.startswith("adj/")}
        )
        table.router.source = f"configmap {policy.namespace}/{ref.name}/{ref.key}"
    if spec.cascade is not None:
        table.cascade.CopyFrom(
            pb.Cascade(
                enabled=True,
                models=spec.cascade.models,
                check=CASCADE_CHECKS.get(spec.cascade.check, spec.cascade.check),
                threshold=spec.cascade.threshold,
                verifier_model=spec.cascade.verifier_model or "",
            )
        )
    if spec.output_budget is not None:
        table.output_budget.CopyFrom(
            pb.OutputBudget(enabled=True, choices=spec.output_budget.choices)
        )
    if spec.cache is not None:
        table.cache.CopyFrom(
            pb.CachePolicy(
                enabled=spec.cache.enabled,
                ttl_seconds=duration_ms(spec.cache.ttl) // 1000,
                max_entries=spec.cache.max_entries,
            )
        )
    if spec.shadow is not None:
        table.shadow.CopyFrom(
            pb.ShadowPolicy(
                model=spec.shadow.model,
                sample_rate=spec.shadow.sample_rate,
                max_spend=spec.shadow.max_spend or 0.0,
            )
        )
    return table


def _model(
    namespace: str, pool: str, m: ModelSpec, secrets: Mapping[str, Mapping[str, str]]
) -> pb.Model:
    out = pb.Model(
        name=m.name,
        pool=f"{namespace}/{pool}",
        provider=PROVIDERS[m.provider],
        upstream_model=m.model,
        endpoint=m.endpoint or DEFAULT_ENDPOINTS.get(m.provider, ""),
        price=pb.Price(
            input_per_mtok=m.pricing.input_per_m_tok,
            cached_input_per_mtok=(
                m.pricing.cached_input_per_m_tok
                if m.pricing.cached_input_per_m_tok is not None
                else m.pricing.input_per_m_tok
            ),
            output_per_mtok=m.pricing.output_per_m_tok,
        ),
        context_window=m.context_window,
        max_output_tokens=m.max_output_tokens or 0,
        capabilities=list(m.capabilities or []),
        region=m.region or "",
        compliance=list(m.compliance or []),
        weight=m.weight,
        api_version=m.api_version or "",
    )
    if m.credentials is not None:
        ref = m.credentials
        out.credential.CopyFrom(
            pb.Credential(
                api_key=secrets[ref.name][ref.key],
                secret_ref=f"{namespace}/{ref.name}/{ref.key}",
            )
        )
    if m.quality is not None:
        out.quality.overall = m.quality.overall
        out.quality.by_task.update(m.quality.by_task or {})
    if m.limits is not None:
        out.limits.CopyFrom(pb.RateLimits(rpm=m.limits.rpm or 0, tpm=m.limits.tpm or 0))
    return out


def _resilience(spec: RoutingPolicySpec, out: pb.Resilience) -> None:
    if spec.retries is not None:
        r = spec.retries
        out.max_retries = r.attempts
        out.per_try_timeout_ms = duration_ms(r.per_try_timeout)
        out.total_timeout_ms = duration_ms(r.total_timeout)
        out.backoff_base_ms = duration_ms(r.backoff_base)
        out.backoff_max_ms = duration_ms(r.backoff_max)
    if spec.circuit_breaker is not None:
        cb = spec.circuit_breaker
        out.circuit_breaker.CopyFrom(
            pb.CircuitBreaker(
                consecutive_failures=cb.consecutive_failures,
                ejection_ms=duration_ms(cb.ejection_time),
                half_open_requests=cb.half_open_requests,
            )
        )


def _pii(spec: RoutingPolicySpec, out: pb.PiiPolicy) -> None:
    if spec.pii is None:
        return
    p = spec.pii
    out.enabled = p.enabled
    out.default_action = PII_ACTIONS[p.default_action]
    for entity, action in (p.entities or {}).items():
        out.actions[entity] = PII_ACTIONS[action]
    for c in p.custom or []:
        out.custom.append(
            pb.CustomEntity(
                name=c.name,
                regex=c.regex,
                validator="" if c.validator == "none" else c.validator,
                context=c.context or [],
            )
        )
    out.compliant_tags.extend(p.compliant_tags or [])
