"""The Router: one per route table, ``decide`` once per request.

Order of a decision (each step is recorded in ``RouteDecision.explanation``):

1. The requested name is resolved through the table's aliases.
2. Rules are evaluated in order; the first match may reject, route to a
   model, fan out to an ensemble, cap output tokens, switch strategy or
   restrict the candidates.
3. A request for a concrete model with no routing rule gets that model and
   its fallback chain (apps that pin a model keep it). A request for
   ``auto`` (or an alias to it), or a rule with ``strategy``/``allowedModels``,
   lets the router choose: the learned router when the table has one,
   otherwise the strategy; a rule with ``allowedModels`` and no strategy is a
   weighted split by ``Model.weight``.
4. Output budgets, cascades and the shadow sample are planned for the choice.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass

from switchman_protocol import featurize
from switchman_protocol.v1 import routes_pb2

from .ensemble import ShadowGate
from .learned import LearnedScorer, adjustments, sigmoid
from .rules import compile_rules, match_rule, request_fields
from .selection import (
    DEFAULT_OUTPUT_TOKENS,
    BudgetPlanner,
    rank_order,
    strategy_order,
    weighted_pick,
)
from .stats import DEFAULT_LATENCY_MS, StatsBook
from .types import CascadePlan, EnsemblePlan, RouteDecision, RouteRequest

__all__ = ["AUTO", "STRATEGY_NAMES", "Router"]

#: The model name that asks the router to choose.
AUTO = "auto"
STRATEGY_NAMES = {
    routes_pb2.STRATEGY_COST: "cost",
    routes_pb2.STRATEGY_QUALITY: "quality",
    routes_pb2.STRATEGY_BALANCED: "balanced",
    routes_pb2.STRATEGY_LATENCY: "latency",
}
MAX_ALIAS_DEPTH = 8
#: Candidates handed to the pipeline for one request (choice + fallbacks).
MAX_CANDIDATES = 4
#: Quality assumed for a model whose pool declares none.
UNKNOWN_QUALITY = 0.5
_CHAT_APIS = frozenset({"chat", "messages", "responses"})


def _logit(p: float) -> float:
    p = min(1 - 1e-6, max(1e-6, p))
    return math.log(p / (1 - p))


@dataclass(frozen=True, slots=True)
class _ModelInfo:
    """What the hot path reads of a model, copied out of the proto once per table
    (protobuf attribute access costs ~100 ns each, for 9 models and several fields)."""

    name: str
    in_price: float
    out_price: float
    caps: frozenset[str]
    context_window: int
    weight: int
    overall: float
    by_task: dict[str, float]

    @classmethod
    def of(cls, m: routes_pb2.Model) -> _ModelInfo:
        return cls(
            m.name,
            m.price.input_per_mtok,
            m.price.output_per_mtok,
            frozenset(m.capabilities),
            int(m.context_window),
            int(m.weight),
            float(m.quality.overall),
            dict(m.quality.by_task),
        )


class _Analysis:
    """The prompt's task kind and features, worked out once, on first use.

    An object rather than a closure: compiled with mypyc (``_compiled.py``), a
    nested function and the frame it closes over refer to each other, which
    left a reference cycle per request for the collector.
    """

    __slots__ = ("_request", "_scorer", "result")

    def __init__(self, request: RouteRequest, scorer: LearnedScorer | None) -> None:
        self._request = request
        self._scorer = scorer
        self.result: tuple[str, Collection[int]] | None = None

    def __call__(self) -> tuple[str, Collection[int]]:
        if self.result is None:
            text = self._request.prompt_text
            if self._scorer is not None:
                self.result = self._scorer.analyze(text)
            else:
                self.result = (featurize.task_kind(text) if text else "chat", ())
        return self.result

    def task_kind(self) -> str:
        return self()[0]


class Router:
    """Aliases, rules, strategies, the learned router, cascades, budgets, shadow."""

    def __init__(self, table: routes_pb2.RouteTable, seed: int | None = None) -> None:
        self._table = table
        self._models = {m.name: m for m in table.models}
        self._info = {m.name: _ModelInfo.of(m) for m in table.models}
        self._bar = float(table.quality_bar)
        self._declared_by_task: dict[str, dict[str, float]] = {}
        self._default_strategy = STRATEGY_NAMES.get(table.default_strategy, "")
        self._cost_weight = float(table.router.cost_weight)
        self._budgets = list(table.output_budget.choices) if table.output_budget.enabled else []
        self._order = [m.name for m in table.models]
        self._fallbacks = {f.model: list(f.fallbacks) for f in table.fallbacks}
        self._aliases = dict(table.aliases)
        for alias in self._aliases:
            if self.resolve(alias) is None:
                raise ValueError(
                    f"alias {alias!r} points at unknown model {self._aliases[alias]!r}"
                )
        self._rules = compile_rules(table.rules)
        self._fields = request_fields(self._rules)
        for compiled in self._rules:
            rule = compiled.rule
            for ref in [rule.route_to, *rule.allowed_models, *rule.ensemble.models]:
                if ref and self.resolve(ref) is None:
                    raise ValueError(f"routing rule {rule.name!r} names unknown model {ref!r}")
        self._scorer: LearnedScorer | None = None
        if table.router.kind == "learned" and table.router.learned.heads:
            self._scorer = LearnedScorer(table.router, set(self._models))
        elif table.router.kind not in ("", "learned"):
            raise ValueError(f"unknown router kind {table.router.kind!r}")
        self._adjust = adjustments(table.router)
        # Per-table constants of the choice, so a decision does not rebuild them.
        self._out_tokens = {name: DEFAULT_OUTPUT_TOKENS for name in self._models}
        if self._scorer is not None:
            self._out_tokens.update(self._scorer.mean_output)
        #: model → (USD per input token, USD for its expected output).
        self._cost_terms = {
            name: (info.in_price / 1e6, self._out_tokens[name] * info.out_price / 1e6)
            for name, info in self._info.items()
        }
        self._out_prices = {name: info.out_price for name, info in self._info.items()}
        self._planner = BudgetPlanner(self._out_tokens, self._out_prices, self._budgets)
        self._any_caps = any(info.caps for info in self._info.values())
        windows = [info.context_window for info in self._info.values() if info.context_window]
        #: Prompts up to this many tokens fit every model's context window.
        self._fits_all = min(windows) if windows else None
        self._rng = random.Random(seed)
        self.stats = StatsBook()
        self.shadow: ShadowGate | None = None
        if table.shadow.model and table.shadow.sample_rate > 0:
            if self.resolve(table.shadow.model) is None:
                raise ValueError(f"shadow model {table.shadow.model!r} is not in the table")
            self.shadow = ShadowGate(
                table.shadow.sample_rate, table.shadow.max_spend, random.Random(seed)
            )
        cascade = table.cascade
        self._cascade: tuple[str, ...] = ()
        if cascade.enabled:
            if cascade.check not in ("json", "logprob", "self_check", "verifier"):
                raise ValueError(f"unknown cascade check {cascade.check!r}")
            names = [self.resolve(m) for m in cascade.models]
            if any(n is None for n in names) or len(names) < 2:
                raise ValueError("a cascade needs at least two models of the table")
            if cascade.check == "verifier" and self.resolve(cascade.verifier_model) is None:
                raise ValueError("the verifier cascade check needs a verifier model of the table")
            self._cascade = tuple(n for n in names if n is not None)
        #: The candidates of ``auto`` and each model's fallback chain, resolved once.
        self._pool = [n for n in self._order if n != AUTO]
        self._pool_terms = [self._cost_terms[n] for n in self._pool]
        self._chains = {name: tuple(self._chain(name)) for name in self._models}
        #: (label, task kind) → the start of the choice's explanation line.
        self._note_heads: dict[tuple[str, str], str] = {}

    # -- helpers -------------------------------------------------------------
    def resolve(self, name: str) -> str | None:
        """Follow aliases to a model name (or ``auto``); None when it ends nowhere."""
        current = name
        for _ in range(MAX_ALIAS_DEPTH):
            if current in self._models or current == AUTO:
                return current
            nxt = self._aliases.get(current)
            if nxt is None:
                return None
            current = nxt
        return None

    def _chain(self, name: str) -> list[str]:
        chain = [name]
        for fb in self._fallbacks.get(name, []):
            target = self.resolve(fb)
            if target and target != AUTO and target not in chain:
                chain.append(target)
        return chain

    def _quality(self, model: _ModelInfo, task: str) -> float:
        base = model.by_task.get(task, model.overall) if task else model.overall
        if base <= 0:
            base = UNKNOWN_QUALITY
        if not self._adjust:
            return base
        adj = self._adjust.get((model.name, task), 0.0) + self._adjust.get((model.name, "*"), 0.0)
        return sigmoid(_logit(base) + adj) if adj else base

    def _eligible(self, names: list[str], request: RouteRequest, notes: list[str]) -> list[str]:
        needs = request.needs
        if (not needs or not self._any_caps) and (
            self._fits_all is None or request.input_tokens <= self._fits_all
        ):
            return names  # the common case: nothing to leave out
        out = []
        for name in names:
            model = self._info[name]
            caps = model.caps
            missing = needs - caps if needs and caps else None
            if missing:
                notes.append(f"{name}: lacks {', '.join(sorted(missing))}")
                continue
            if model.context_window and request.input_tokens > model.context_window:
                notes.append(f"{name}: prompt exceeds its context window")
                continue
            out.append(name)
        return out

    # -- the decision --------------------------------------------------------
    def decide(self, request: RouteRequest) -> RouteDecision:
        notes: list[str] = []
        resolved = self.resolve(request.model) if request.model else None
        analyze = _Analysis(request, self._scorer)

        rule: routes_pb2.Rule | None = None
        if self._rules:
            task: Callable[[], str] = analyze.task_kind
            match = match_rule(self._rules, request, task, self._fields)
            notes.extend(match.notes)
            rule = match.rule
        strategy = self._default_strategy
        allowed: list[str] | None = None
        cap: int | None = None
        ensemble: EnsemblePlan | None = None
        if rule is not None:
            notes.append(f"rule {rule.name} matched: {rule.when}")
            if rule.reject:
                return RouteDecision(
                    candidates=[],
                    reason=f"rule:{rule.name}",
                    rule=rule.name,
                    reject=rule.reject,
                    task_kind=analyze.result[0] if analyze.result is not None else "",
                    explanation=notes,
                )
            if rule.max_output_tokens:
                cap = int(rule.max_output_tokens)
            if rule.ensemble.models:
                members = [n for n in (self.resolve(m) for m in rule.ensemble.models) if n]
                judge = (
                    self.resolve(rule.ensemble.judge_model) if rule.ensemble.judge_model else None
                )
                ensemble = EnsemblePlan(
                    tuple(m for m in members if m != AUTO),
                    rule.ensemble.aggregate or "vote",
                    judge if judge != AUTO else None,
                )
            if rule.strategy:
                strategy = STRATEGY_NAMES[rule.strategy]
            if rule.allowed_models:
                allowed = [n for n in (self.resolve(m) for m in rule.allowed_models) if n]
            if rule.route_to:
                resolved = self.resolve(rule.route_to)
        choose = resolved == AUTO or (
            rule is not None and not rule.route_to and bool(rule.strategy or rule.allowed_models)
        )
        if resolved is None and not choose:
            return RouteDecision(candidates=[], reason="unknown-model", explanation=notes)
        decision: RouteDecision
        if not choose:
            assert resolved is not None
            reason = (
                f"rule:{rule.name}"
                if rule is not None and (rule.route_to or ensemble or cap)
                else ("alias" if resolved != request.model else "requested")
            )
            notes.append(f"{resolved}: {reason}")
            decision = RouteDecision(candidates=list(self._chains[resolved]), reason=reason)
        else:
            decision = self._choose(request, strategy, allowed, rule, analyze, notes)
        if rule is not None:
            decision.rule = rule.name
        if analyze.result is not None:
            decision.task_kind = analyze.result[0]
        if cap is not None:
            current = decision.max_output_tokens
            decision.max_output_tokens = min(current, cap) if current else cap
            notes.append(f"output capped at {cap} tokens by rule {rule.name if rule else ''}")
        if ensemble is not None and len(ensemble.models) >= 2:
            decision.ensemble_plan = ensemble
            decision.ensemble = list(ensemble.models)
            notes.append(f"ensemble of {', '.join(ensemble.models)} ({ensemble.aggregate})")
        if (
            self.shadow is not None
            and decision.candidates
            and request.api in _CHAT_APIS
            and self.shadow.sample(request.request_id)
        ):
            shadow = self.resolve(self._table.shadow.model)
            if shadow and shadow != decision.candidates[0]:
                decision.shadow_model = shadow
                notes.append(f"shadowed to {shadow} (sample rate {self.shadow.sample_rate})")
        decision.explanation = notes
        return decision

    def _choose(
        self,
        request: RouteRequest,
        strategy: str,
        allowed: list[str] | None,
        rule: routes_pb2.Rule | None,
        analyze: Callable[[], tuple[str, Collection[int]]],
        notes: list[str],
    ) -> RouteDecision:
        pool = [n for n in allowed if n != AUTO] if allowed else self._pool
        names = self._eligible(pool, request, notes)
        if not names:
            return RouteDecision(candidates=[], reason="no-eligible-model", explanation=notes)
        prefix = f"rule:{rule.name}/" if rule is not None else ""
        if rule is not None and rule.allowed_models and not rule.strategy:
            weights = [self._info[n].weight for n in names]
            chosen = weighted_pick(names, weights, self._rng)
            notes.append(
                "weighted split "
                + ", ".join(f"{n}={w}" for n, w in zip(names, weights, strict=True))
                + f" drew {chosen[0]}"
            )
            return RouteDecision(
                candidates=self._with_fallbacks(chosen), reason=f"{prefix}weighted", strategy=""
            )
        kind, indices = analyze()
        scorer = self._scorer
        use_learned = scorer is not None and (rule is None or not rule.strategy)
        # Per candidate (``names`` order): quality, then the expected cost of this request.
        if use_learned and scorer is not None:
            qualities = scorer.predict_list(indices, kind)
            if names != scorer.names:
                probs = dict(zip(scorer.names, qualities, strict=True))
                declared = self._declared(kind)
                qualities = [probs[n] if n in probs else declared[n] for n in names]
        else:
            declared = self._declared(kind)
            qualities = [declared[n] for n in names]
        observed = self.stats.observed
        if observed:
            qualities = [
                q if (seen := observed.get(n)) is None else q * (1.0 - seen.error_rate)
                for n, q in zip(names, qualities, strict=True)
            ]
        in_tokens = request.input_tokens
        terms = (
            self._pool_terms
            if names is self._pool
            else list(map(self._cost_terms.__getitem__, names))
        )
        costs = [in_tokens * per_input + output for per_input, output in terms]
        bar = self._bar
        cost_weight = self._cost_weight
        # Rank the candidates, or (with output budgets) every (model, budget) pair,
        # on parallel lists: no object per model or per budget.
        planned = (
            self._planner.plan(names, qualities, costs, request.max_output_tokens)
            if self._budgets
            else None
        )
        models, plan_q, plan_c = (names, qualities, costs) if planned is None else planned[:3]
        if use_learned:
            ranked_at = rank_order(plan_q, plan_c, models, bar, cost_weight)
            reason, label = f"{prefix}router", "learned"
        else:
            label = strategy or "balanced"
            reason = f"{prefix}strategy:{label}"
            latencies = [
                self.stats.expected_latency_ms(n) if n in observed else DEFAULT_LATENCY_MS
                for n in names
            ]
            if planned is not None:  # every budget of a model in a row
                per_model = len(models) // len(names)
                latencies = [lat for lat in latencies for _ in range(per_model)]
            ranked_at = strategy_order(plan_q, plan_c, latencies, models, label, bar)
        first = ranked_at[0]
        best_model, best_quality, best_cost = models[first], plan_q[first], plan_c[first]
        best_budget = planned[3][first] if planned is not None else None
        order = [models[i] for i in ranked_at]
        if planned is not None:
            order = list(dict.fromkeys(order))  # the first (best) budget of each model
        scores = dict(zip(names, qualities, strict=True))
        head = self._note_heads.get((label, kind))
        if head is None:
            head = f"{label}: task {kind}, bar {bar:g}, cost weight {cost_weight:g}; chose "
            if len(self._note_heads) < 256:  # labels and task kinds are closed sets
                self._note_heads[(label, kind)] = head
        notes.append(
            head
            + best_model
            + (f" with budget {best_budget}" if best_budget else "")
            + f" (quality {best_quality:.3f}, est. ${best_cost:.6f})"
        )
        decision = RouteDecision(
            candidates=self._with_fallbacks(order),
            reason=reason,
            strategy=label,
            score=round(best_quality, 4),
            task_kind=kind,
            max_output_tokens=best_budget,
            scores=scores,
        )
        if self._cascade and (rule is None or not allowed):
            plan = [m for m in self._cascade if m in names]
            if len(plan) >= 2:
                cascade = self._table.cascade
                decision.cascade = plan
                decision.cascade_plan = CascadePlan(
                    tuple(plan),
                    cascade.check,
                    cascade.threshold,
                    self.resolve(cascade.verifier_model) if cascade.verifier_model else None,
                )
                # ``candidates`` stay the router's choice: a streamed request cannot be
                # checked before the client sees it, so it is not cascaded.
                notes.append(
                    f"cascade {' -> '.join(plan)} checked by {cascade.check} "
                    f"(non-streamed requests)"
                )
        return decision

    def _with_fallbacks(self, order: list[str]) -> list[str]:
        chain = self._chains.get(order[0])
        out = list(chain) if chain is not None else self._chain(order[0])
        if len(out) < MAX_CANDIDATES:
            for name in order:  # order[0] heads the chain already
                if name not in out:
                    out.append(name)
                    if len(out) == MAX_CANDIDATES:
                        break
        return out[:MAX_CANDIDATES]

    def _declared(self, task: str) -> dict[str, float]:
        """Declared quality per model for a task kind (with feedback offsets), cached per table."""
        cached = self._declared_by_task.get(task)
        if cached is None:
            cached = {name: self._quality(info, task) for name, info in self._info.items()}
            self._declared_by_task[task] = cached
        return cached

    def start(self, model: str) -> None:
        """An attempt on ``model`` begins (load for the latency strategy)."""
        self.stats.start(model)

    def observe(self, model: str, latency_ms: float, ok: bool) -> None:
        """Feed back one outcome (latency EWMA, error rate)."""
        self.stats.observe(model, latency_ms, ok)
