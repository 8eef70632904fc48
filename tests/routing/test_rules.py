"""Static routing: aliases, CEL rules, weighted splits, rejects, caps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from switchman_protocol.v1 import routes_pb2 as pb
from switchman_sidecar.routing import BudgetView, Router, RouteRequest


def test_alias_resolves_with_fallbacks(make_table: Callable[..., pb.RouteTable]) -> None:
    table = make_table(
        aliases={"best": "top", "top": "big"},
        fallbacks=[pb.FallbackChain(model="big", fallbacks=["mid"])],
    )
    decision = Router(table).decide(RouteRequest(model="best"))
    assert decision.candidates == ["big", "mid"]
    assert decision.reason == "alias"
    assert Router(table).decide(RouteRequest(model="small")).reason == "requested"
    assert Router(table).decide(RouteRequest(model="nope")).candidates == []


def test_bad_alias_and_bad_rule_reject_the_table(make_table: Callable[..., pb.RouteTable]) -> None:
    with pytest.raises(ValueError, match="alias"):
        Router(make_table(aliases={"x": "missing"}))
    with pytest.raises(ValueError, match="does not compile"):
        Router(make_table(rules=[pb.Rule(name="broken", when="request.model ==", route_to="big")]))
    with pytest.raises(ValueError, match="unknown model"):
        Router(make_table(rules=[pb.Rule(name="r", when="true", route_to="ghost")]))


def test_rules_first_match_wins_over_headers_budget_tokens_pii(
    make_table: Callable[..., pb.RouteTable],
) -> None:
    rules = [
        pb.Rule(name="premium", when='request.headers["x-tier"] == "premium"', route_to="big"),
        pb.Rule(name="pii", when='"US_SSN" in pii', allowed_models=["small"]),
        pb.Rule(name="near-budget", when="budget.percentUsed > 80.0", strategy=pb.STRATEGY_COST),
        pb.Rule(name="huge", when="request.inputTokens > 100000", reject="too long"),
        pb.Rule(name="meta", when='request.metadata["team"] == "x"', route_to="mid"),
    ]
    router = Router(make_table(rules=rules, default_strategy=pb.STRATEGY_QUALITY))
    d = router.decide(RouteRequest(model="mid", headers={"x-tier": "premium"}))
    assert (d.candidates[0], d.rule, d.reason) == ("big", "premium", "rule:premium")
    # An absent header makes the condition error: that rule does not match, and says why.
    d = router.decide(RouteRequest(model="mid", budget=BudgetView("SoftLimited", 85.0)))
    assert d.rule == "near-budget" and d.candidates[0] == "small"
    assert d.reason == "rule:near-budget/strategy:cost"
    assert any("premium" in n and "not evaluated" in n for n in d.explanation)
    d = router.decide(RouteRequest(model="big", pii_types=frozenset({"US_SSN"})))
    assert d.candidates == ["small"] and d.rule == "pii"
    d = router.decide(RouteRequest(model="big", input_tokens=200_000))
    assert d.reject == "too long" and d.candidates == []
    d = router.decide(RouteRequest(model="big", metadata={"team": "x"}))
    assert d.candidates[0] == "mid"
    d = router.decide(RouteRequest(model="big"))
    assert (d.candidates[0], d.rule, d.reason) == ("big", None, "requested")


def test_task_and_time_variables(make_table: Callable[..., pb.RouteTable]) -> None:
    rules = [
        pb.Rule(name="code", when='task == "code"', route_to="big"),
        pb.Rule(name="night", when="time.hour >= 22 || now.getHours() < 6", route_to="small"),
    ]
    router = Router(make_table(rules=rules))
    d = router.decide(RouteRequest(model="mid", prompt_text="Write a python function to sort"))
    assert d.rule == "code" and d.task_kind == "code" and d.candidates[0] == "big"
    night = 1_700_000_000 - (1_700_000_000 % 86400) + 3 * 3600  # 03:00 UTC
    noon = night + 9 * 3600
    assert Router(make_table(rules=rules)).decide(
        RouteRequest(model="mid", prompt_text="hello", now=night)
    ).candidates[0] == ("small")
    assert Router(make_table(rules=rules)).decide(
        RouteRequest(model="mid", prompt_text="hello", now=noon)
    ).candidates[0] == ("mid")


def test_weighted_split_draws_by_weight(make_table: Callable[..., pb.RouteTable]) -> None:
    table = make_table(rules=[pb.Rule(name="canary", when="true", allowed_models=["big", "mid"])])
    table.models[0].weight = 9
    table.models[1].weight = 1
    router = Router(table, seed=7)
    drawn = Counter(router.decide(RouteRequest(model="auto")).candidates[0] for _ in range(2000))
    assert set(drawn) == {"big", "mid"}
    assert 0.85 < drawn["big"] / 2000 < 0.95
    assert router.decide(RouteRequest(model="auto")).reason == "rule:canary/weighted"


def test_rule_caps_output_tokens_and_plans_ensemble(
    make_table: Callable[..., pb.RouteTable],
) -> None:
    rules = [
        pb.Rule(
            name="high-stakes",
            when='request.headers["x-stakes"] == "high"',
            route_to="big",
            max_output_tokens=300,
            ensemble=pb.Ensemble(
                models=["big", "mid", "small"], aggregate="judge", judge_model="big"
            ),
        )
    ]
    d = Router(make_table(rules=rules)).decide(
        RouteRequest(model="small", headers={"x-stakes": "high"})
    )
    assert d.max_output_tokens == 300
    assert d.ensemble == ["big", "mid", "small"]
    assert d.ensemble_plan is not None and d.ensemble_plan.judge_model == "big"
    assert d.ensemble_plan.aggregate == "judge"


def test_cached_rule_contexts_follow_the_values_down_to_their_type(
    make_table: Callable[..., pb.RouteTable], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rules over budget/pii/task/time keep their CEL contexts keyed by the values:
    a later request with other values (or 42 instead of 42.0) must not see old ones."""
    from switchman_sidecar.routing import rules as rules_module

    monkeypatch.setattr(rules_module, "MAX_CONTEXTS", 3)
    rules = [
        pb.Rule(name="int", when="budget.percentUsed / 5 == 8", route_to="small"),  # 8.4 for 42.0
        pb.Rule(name="minus", when='string(budget.percentUsed) == "-0"', route_to="small"),
        pb.Rule(name="high", when="budget.percentUsed > 90.0", route_to="mid"),
        pb.Rule(name="ssn", when='pii.exists(p, p == "US_SSN")', route_to="mid"),
        pb.Rule(name="late", when="time.hour >= 22 && size(pii) == 0", route_to="small"),
    ]
    router = Router(make_table(rules=rules))
    noon, night = 1764676800.0, 1764716400.0  # 12:00 and 23:00 UTC

    def rule(percent: float, pii: frozenset[str] = frozenset(), now: float = noon) -> str | None:
        budget = BudgetView("Ok", percent)
        request = RouteRequest(model="big", budget=budget, pii_types=pii, now=now)
        return router.decide(request).rule

    for _ in range(2):  # the second round reads the contexts cached by the first
        assert rule(42.0) is None
        assert rule(42) == "int"
        assert rule(95.0) == "high"
        assert rule(42.0, frozenset({"US_SSN"})) == "ssn"
        assert rule(42.0, now=night) == "late"
        assert rule(42.0, frozenset({"EMAIL_ADDRESS"}), now=night) is None
        assert rule(0.0) is None
        assert rule(-0.0) == "minus"
    for percent in range(91, 120):  # more values than MAX_CONTEXTS: the memo starts over
        assert rule(float(percent)) == "high"
    assert all(len(c.contexts) <= 3 for c in router._rules)
    # ``p`` (bound by exists) is not a cacheable variable: that rule resolves per request.
    assert [bool(c.cached) for c in router._rules] == [True, True, True, False, True]
