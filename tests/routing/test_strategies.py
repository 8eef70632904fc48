"""Strategies over candidates: prices, quality (overall and per task), latency, load."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from switchman_protocol.v1 import routes_pb2 as pb
from switchman_sidecar.routing import Router, RouteRequest
from switchman_sidecar.routing.selection import (
    DEFAULT_OUTPUT_TOKENS,
    BudgetPlanner,
    _budget_curve,
    rank_order,
    strategy_order,
)


def decide(table: pb.RouteTable, prompt: str = "hello there", **kw: object) -> list[str]:
    return Router(table).decide(RouteRequest(model="auto", prompt_text=prompt, **kw)).candidates  # type: ignore[arg-type]


def test_cost_picks_cheapest_clearing_the_bar(make_table: Callable[..., pb.RouteTable]) -> None:
    assert decide(make_table(default_strategy=pb.STRATEGY_COST))[0] == "small"
    # small is 0.8 on chat (clears 0.75) but only 0.6 overall, e.g. for extraction.
    assert decide(make_table(default_strategy=pb.STRATEGY_COST, quality_bar=0.75))[0] == "small"
    extract = "Extract the invoice number"
    assert decide(make_table(default_strategy=pb.STRATEGY_COST, quality_bar=0.75), extract)[0] == (
        "mid"
    )
    # Per task: "code" quality of mid is 0.70, so code goes to big.
    code = "Write a python function that parses a date"
    table = make_table(default_strategy=pb.STRATEGY_COST, quality_bar=0.75)
    assert decide(table, code)[0] == "big"
    # Nothing clears an impossible bar: the best quality wins.
    assert decide(make_table(default_strategy=pb.STRATEGY_COST, quality_bar=0.99))[0] == "big"


def test_quality_and_balanced(make_table: Callable[..., pb.RouteTable]) -> None:
    assert decide(make_table(default_strategy=pb.STRATEGY_QUALITY))[0] == "big"
    # small's chat quality is 0.8 at a fiftieth of big's price: balanced takes it.
    assert decide(make_table(default_strategy=pb.STRATEGY_BALANCED))[0] == "small"
    # For code (small 0.4, mid 0.7, big 0.95) balanced moves up.
    assert decide(make_table(default_strategy=pb.STRATEGY_BALANCED), "Fix this python bug")[0] != (
        "small"
    )


def test_latency_uses_ewma_and_load(make_table: Callable[..., pb.RouteTable]) -> None:
    router = Router(make_table(default_strategy=pb.STRATEGY_LATENCY))
    for _ in range(5):
        router.observe("big", 100.0, True)
        router.observe("mid", 400.0, True)
        router.observe("small", 900.0, True)
    assert router.decide(RouteRequest(model="auto")).candidates[0] == "big"
    for _ in range(20):  # big gets busy: 20 requests in flight quadruple its expected latency
        router.start("big")
    assert router.decide(RouteRequest(model="auto")).candidates[0] == "mid"


def test_errors_lower_a_models_effective_quality(make_table: Callable[..., pb.RouteTable]) -> None:
    router = Router(make_table(default_strategy=pb.STRATEGY_QUALITY))
    math = RouteRequest(model="auto", prompt_text="Solve the equation x + 2 = 5")
    assert router.decide(math).candidates[0] == "big"
    for _ in range(10):
        router.observe("big", 50.0, False)
    assert router.decide(math).candidates[0] == "mid"


def test_capabilities_and_context_window_filter(make_table: Callable[..., pb.RouteTable]) -> None:
    table = make_table(default_strategy=pb.STRATEGY_COST)
    d = Router(table).decide(RouteRequest(model="auto", needs=frozenset({"tools"})))
    assert "mid" not in d.candidates and d.candidates[0] == "small"
    assert any("mid: lacks tools" in n for n in d.explanation)
    table.models[2].context_window = 1000
    d = Router(table).decide(RouteRequest(model="auto", input_tokens=5000))
    assert d.candidates[0] == "mid"


def test_explanation_names_strategy_and_scores(make_table: Callable[..., pb.RouteTable]) -> None:
    d = Router(make_table(default_strategy=pb.STRATEGY_COST, quality_bar=0.7)).decide(
        RouteRequest(model="auto", prompt_text="hi")
    )
    assert d.reason == "strategy:cost" and d.strategy == "cost"
    assert set(d.scores) == {"big", "mid", "small"}
    assert d.score == d.scores[d.candidates[0]]
    assert any("chose" in n for n in d.explanation)


class Option(NamedTuple):
    """A candidate as the reference definitions below see it."""

    model: str
    quality: float
    cost: float
    latency_ms: float = 0.0
    budget: int | None = None


def _reference_rank(options: list[Option], bar: float, cost_weight: float) -> list[Option]:
    """The selection rule written on candidate objects (the request path ranks lists)."""
    if cost_weight > 0:
        top = max(o.cost for o in options)

        def utility(o: Option) -> float:
            norm = o.cost / top if top > 0 else 0.0
            return (1.0 - cost_weight) * o.quality - cost_weight * norm

        return sorted(options, key=lambda o: (-utility(o), o.cost, o.model))
    if bar > 0:
        clear = sorted((o for o in options if o.quality >= bar), key=lambda o: (o.cost, o.model))
        rest = sorted(
            (o for o in options if o.quality < bar), key=lambda o: (-o.quality, o.cost, o.model)
        )
        return clear + rest
    return sorted(options, key=lambda o: (-o.quality, o.cost, o.model))


def _reference_strategy(options: list[Option], strategy: str, bar: float) -> list[Option]:
    clearing = [o for o in options if o.quality >= bar]
    if strategy == "quality" or not clearing:
        return sorted(options, key=lambda o: (-o.quality, o.cost, o.model))
    others = [o for o in options if o not in clearing]
    if strategy == "cost":
        head = sorted(clearing, key=lambda o: (o.cost, -o.quality, o.model))
    elif strategy == "latency":
        head = sorted(clearing, key=lambda o: (o.latency_ms, o.cost, o.model))
    else:
        top = max(o.cost for o in clearing)
        scale = 0.3 / top if top > 0 else 0.0
        head = sorted(clearing, key=lambda o: (o.cost * scale - 0.7 * o.quality, o.cost, o.model))
    return head + sorted(others, key=lambda o: (-o.quality, o.cost))


def test_list_rankings_equal_the_reference_definitions() -> None:
    """rank_order / strategy_order / BudgetPlanner (the request path) against
    definitions written on candidate objects, on random pools with ties, zero costs
    and budgets."""
    import random

    rng = random.Random(11)
    for trial in range(400):
        n = rng.randint(1, 12)
        qualities = [rng.choice([0.5, 0.75, rng.random()]) for _ in range(n)]
        costs = [rng.choice([0.0, 1e-5, rng.random() * 1e-3]) for _ in range(n)]
        if trial % 7 == 0:
            costs = [0.0] * n
        options = [
            Option(f"m{i}", q, c, rng.choice([100.0, rng.random() * 900]))
            for i, (q, c) in enumerate(zip(qualities, costs, strict=True))
        ]
        rng.shuffle(options)
        bar = rng.choice([0.0, 0.6, 0.75, 0.99])
        weight = rng.choice([0.0, 0.3, 1.0])
        models = [o.model for o in options]
        qs = [o.quality for o in options]
        cs = [o.cost for o in options]
        lats = [o.latency_ms for o in options]
        ranked = [options[i] for i in rank_order(qs, cs, models, bar, weight)]
        assert ranked == _reference_rank(options, bar, weight)
        for strategy in ("cost", "quality", "balanced", "latency"):
            ranked = [options[i] for i in strategy_order(qs, cs, lats, models, strategy, bar)]
            assert ranked == _reference_strategy(options, strategy, bar)
        choices = rng.choice([[256, 1024, 4096], [0], [512]])
        mean = {o.model: rng.choice([50.0, 300.0]) for o in options}
        price = {o.model: rng.random() for o in options}
        cap = rng.choice([None, 300])
        lists = BudgetPlanner(mean, price, choices).plan(models, qs, cs, cap)
        if lists is None:
            planned = options
        else:
            per_model = len(lists[0]) // len(options)
            planned = list(
                map(Option, *lists[:3], [x for x in lats for _ in range(per_model)], lists[3])
            )
        budgets = sorted({min(b, cap) if cap else b for b in choices if b > 0})
        expected = [
            Option(
                o.model,
                o.quality * (1.0 - math.exp(-b / max(1.0, mean[o.model]))),
                o.cost
                - max(1.0, mean[o.model]) * (price[o.model] / 1e6)
                + max(1.0, mean[o.model])
                * (1.0 - math.exp(-b / max(1.0, mean[o.model])))
                * (price[o.model] / 1e6),
                o.latency_ms,
                b,
            )
            for o in options
            for b in budgets
        ] or options
        assert planned == expected


def plan_budget_lists(
    models: Sequence[str],
    qualities: Sequence[float],
    costs: Sequence[float],
    mean_output: dict[str, float],
    out_price: dict[str, float],
    choices: Sequence[int],
    cap: int | None,
) -> tuple[list[str], list[float], list[float], list[int]] | None:
    """The per-request definition of the output-budget pairs (the model is in
    ``BudgetPlanner``'s doc): parallel lists (model, quality, cost, budget per
    pair), or None when no budget applies. The planner must give the same lists,
    float for float."""
    budgets = tuple(sorted({min(b, cap) if cap else b for b in choices if b > 0}))
    if not budgets:
        return None
    out_models: list[str] = []
    out_qualities: list[float] = []
    out_costs: list[float] = []
    out_budgets: list[int] = []
    for model, quality, cost in zip(models, qualities, costs, strict=True):
        length = max(1.0, mean_output.get(model, DEFAULT_OUTPUT_TOKENS))
        price = out_price.get(model, 0.0) / 1e6
        base = cost - length * price  # ``cost`` assumed a full answer of ``length`` tokens
        curve = _budget_curve(length, budgets)
        out_models += [model] * len(curve)
        out_qualities += [quality * fits for _, fits, _ in curve]
        out_costs += [base + billed * price for _, _, billed in curve]
        out_budgets += budgets
    return out_models, out_qualities, out_costs, out_budgets


def test_budget_planner_equals_plan_budget_lists() -> None:
    """The per-table planner of the request path gives plan_budget_lists' lists,
    float for float, for any candidates, qualities, costs and client cap."""
    import random

    from switchman_sidecar.routing.selection import MAX_LAYOUTS

    rng = random.Random(21)
    for _ in range(40):
        pool = [f"m{i}" for i in range(rng.randint(1, 12))]
        mean = {m: rng.choice([0.5, 50.0, 256.0, rng.random() * 2000]) for m in pool[1:]}
        price = {m: rng.choice([0.0, rng.random() * 30]) for m in pool[:-1]}
        choices = rng.choice([[256, 1024, 4096], [0], [512, 0, 512], [], [1, 100000]])
        planner = BudgetPlanner(mean, price, choices)
        for _ in range(60):
            models = rng.sample(pool, rng.randint(1, len(pool)))
            qs = [rng.choice([0.0, -0.0, 1.0, rng.random()]) for _ in models]
            cs = [rng.choice([0.0, rng.random() * 1e-3, 1e9]) for _ in models]
            cap = rng.choice([None, 0, 1, 300, 5000, rng.randint(1, 10**6)])
            got = planner.plan(models, qs, cs, cap)
            expect = plan_budget_lists(models, qs, cs, mean, price, choices, cap)
            assert (got is None) == (expect is None)
            if got is not None and expect is not None:
                assert got[0] == expect[0] and got[3] == expect[3]
                assert list(map(float.hex, got[1] + got[2])) == list(
                    map(float.hex, expect[1] + expect[2])
                )
        assert len(planner._layouts) <= MAX_LAYOUTS
