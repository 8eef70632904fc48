"""Strategies over candidates: prices, quality (overall and per task), latency, load."""

from __future__ import annotations

from collections.abc import Callable

from switchman_protocol.v1 import routes_pb2 as pb
from switchman_sidecar.routing import Router, RouteRequest


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
