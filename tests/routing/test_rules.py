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


def test_rules_read_only_the_request_parts_they_name_and_answer_as_with_all_of_it() -> None:
    """A rule that only selects ``request.<field>`` and indexes ``headers``/``metadata``
    with literals gets a context with just those parts, kept per their values; any other
    use of ``request`` keeps the full map. Either way each rule must answer (match, no
    match, or the same note) exactly as it does with every field and every header."""
    import datetime as dt
    import random

    from switchman_sidecar.routing._cel import cel
    from switchman_sidecar.routing.rules import compile_rules, match_rule

    rng = random.Random(11)
    keys = ["x-tier", "x-team", "authorization", "a.b", "x_y", "k"]
    values = ["premium", "free", "", "Bearer sk-1"]
    narrow_atoms = [
        lambda: f'request.headers["{rng.choice(keys)}"] == "{rng.choice(values)}"',
        lambda: f"'{rng.choice(keys)}' in request.headers",
        lambda: f'request.metadata["{rng.choice(keys)}"] == "{rng.choice(values)}"',
        lambda: f'"{rng.choice(keys)}" in request.metadata',
        lambda: f'request.model == "{rng.choice(["big", "small"])}"',
        lambda: f"request.inputTokens > {rng.randint(0, 50)}",
        lambda: f'request.task == "{rng.choice(["chat", "code"])}"',
        lambda: f"budget.percentUsed > {rng.randint(0, 100)}.0",
        lambda: f'"US_SSN" in pii && task == "{rng.choice(["chat", "code"])}"',
    ]
    wide_atoms = [
        lambda: f"request.headers.size() > {rng.randint(0, 4)}",
        lambda: 'request.headers.exists(h, h.startsWith("x-"))',
        lambda: f"has(request.headers.{rng.choice(['k', 'x_y'])})",
        lambda: "size(request) > 3",
        lambda: '"headers" in request',
        lambda: f'request.headers["x-" + "{rng.choice(["tier", "team"])}"] == "free"',
        lambda: '"""x-tier""" in request.headers',
    ]

    def expression(atoms: list[Callable[[], str]]) -> str:
        parts = [rng.choice(atoms)() for _ in range(rng.randint(1, 3))]
        out = parts[0]
        for part in parts[1:]:
            out = f"({out}) {rng.choice(['&&', '||'])} {'!' if rng.random() < 0.3 else ''}({part})"
        return out

    sources = [expression(narrow_atoms) for _ in range(60)]
    sources += [expression(narrow_atoms + wide_atoms) for _ in range(60)]
    rules = compile_rules([pb.Rule(name=f"r{i}", when=src) for i, src in enumerate(sources)])
    shaped = sum(r.shape is not None for r in rules)
    assert 60 <= shaped < len(rules)  # every narrow rule, and the wide ones fall back

    def reference(src: str, request: RouteRequest, task: str) -> tuple[str, object]:
        when = dt.datetime.fromtimestamp(request.now or 0.0, dt.UTC)
        ctx = cel.Context(
            {
                "request": {
                    "model": request.model,
                    "api": request.api,
                    "headers": dict(request.headers),
                    "metadata": dict(request.metadata),
                    "inputTokens": request.input_tokens,
                    "maxOutputTokens": request.max_output_tokens or 0,
                    "needs": sorted(request.needs),
                    "pii": sorted(request.pii_types),
                    "task": task,
                },
                "budget": {
                    "state": request.budget.state,
                    "percentUsed": request.budget.percent_used,
                },
                "pii": sorted(request.pii_types),
                "task": task,
                "now": when,
                "time": {"hour": when.hour, "minute": when.minute, "weekday": when.weekday()},
            }
        )
        try:
            result = cel.compile(src).execute(ctx)
        except Exception as exc:
            return ("error", type(exc).__name__)
        return ("value", result)

    for _ in range(150):
        headers = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 4))}
        headers.update({f"x-stainless-{i}": "v" for i in range(rng.randint(0, 8))})
        metadata = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 3))}
        request = RouteRequest(
            model=rng.choice(["big", "small"]),
            headers=headers,
            metadata=metadata,
            input_tokens=rng.randint(0, 60),
            pii_types=frozenset(rng.sample(["US_SSN", "EMAIL_ADDRESS"], rng.randint(0, 2))),
            budget=BudgetView("Ok", float(rng.randint(0, 100))),
            now=1764676800.0,
        )
        task = rng.choice(["chat", "code"])
        for compiled, src in zip(rules, sources, strict=True):
            got = match_rule([compiled], request, lambda task=task: task)
            kind, want = reference(src, request, task)
            if kind == "error":
                assert got.rule is None and "not evaluated" in got.notes[0], src
            elif want is True:
                assert got.rule is compiled.rule and not got.notes, src
            elif want is False:
                assert got.rule is None and not got.notes, src
            else:
                assert got.rule is None and "is not a bool" in got.notes[0], src
