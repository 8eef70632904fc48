"""Cascades, output budgets, shadow sampling, ensembles: plans and pure checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from switchman_protocol.v1 import routes_pb2 as pb
from switchman_sidecar.routing import (
    Router,
    RouteRequest,
    ShadowGate,
    check_json,
    check_logprobs,
    judge_messages,
    parse_confidence,
    parse_judge,
    verification_messages,
    vote,
)
from switchman_sidecar.routing.cascade import logprobs_of


def test_cascade_plan_in_decision(make_table: Callable[..., pb.RouteTable]) -> None:
    cascade = pb.Cascade(enabled=True, models=["small", "big"], check="json", threshold=0.5)
    d = Router(make_table(cascade=cascade)).decide(RouteRequest(model="auto", prompt_text="hi"))
    assert d.cascade == ["small", "big"]
    assert d.cascade_plan is not None and d.cascade_plan.check == "json"
    assert d.candidates[0] == "small"  # hi is chat: small (0.8) is the balanced choice anyway
    # A pinned model is not cascaded.
    assert Router(make_table(cascade=cascade)).decide(RouteRequest(model="mid")).cascade is None
    with pytest.raises(ValueError, match="cascade check"):
        Router(make_table(cascade=pb.Cascade(enabled=True, models=["small", "big"], check="x")))


def test_cascade_checks() -> None:
    assert check_json('{"a": 1}').passes(0.5)
    assert check_json('```json\n{"a": [1, 2]}\n```').passes(1.0)
    assert not check_json("{'a': 1}").passes(0.1)
    sure = check_logprobs([-0.01, -0.02, -0.05])
    unsure = check_logprobs([-1.5, -2.0, -0.7])
    assert sure.passes(0.9) and not unsure.passes(0.5)
    assert not check_logprobs([]).passes(0.0001)
    choice = {
        "logprobs": {"content": [{"token": "a", "logprob": -0.1}, {"token": "b", "logprob": -0.3}]}
    }
    assert logprobs_of(choice) == [-0.1, -0.3]
    assert parse_confidence("0.85").confidence == 0.85
    assert parse_confidence("I'd say 70% sure").confidence == pytest.approx(0.7)
    assert parse_confidence("Yes, it is correct").confidence == 1.0
    assert parse_confidence("No.").confidence == 0.0
    assert parse_confidence("hmm").confidence == 0.0
    msgs = verification_messages("2+2?", "4")
    assert msgs[-1]["content"].endswith("4") and "2+2?" in msgs[-1]["content"]


def test_output_budget_jointly_with_model(make_table: Callable[..., pb.RouteTable]) -> None:
    table = make_table(
        quality_bar=0.5,
        output_budget=pb.OutputBudget(enabled=True, choices=[64, 512, 4096]),
        router=pb.RouterParams(cost_weight=0.0),
        default_strategy=pb.STRATEGY_COST,
    )
    d = Router(table).decide(RouteRequest(model="auto", prompt_text="hello"))
    assert d.max_output_tokens in (64, 512, 4096)
    # The client's own limit caps every budget.
    d = Router(table).decide(RouteRequest(model="auto", prompt_text="hello", max_output_tokens=100))
    assert d.max_output_tokens is not None and d.max_output_tokens <= 100
    # A tight bar needs the answer to finish: the budget grows rather than truncating.
    table.quality_bar = 0.75
    d = Router(table).decide(RouteRequest(model="auto", prompt_text="hello"))
    assert d.max_output_tokens is not None and d.max_output_tokens >= 512


def test_shadow_sampled_and_capped(make_table: Callable[..., pb.RouteTable]) -> None:
    table = make_table(shadow=pb.ShadowPolicy(model="big", sample_rate=0.3, max_spend=1.0))
    router = Router(table, seed=1)
    ids = [f"req-{i}" for i in range(1000)]
    shadowed = [router.decide(RouteRequest(model="small", request_id=i)).shadow_model for i in ids]
    share = sum(1 for s in shadowed if s == "big") / len(ids)
    assert 0.25 < share < 0.35
    # Deterministic per request id.
    assert (
        router.decide(RouteRequest(model="small", request_id="req-3")).shadow_model == shadowed[3]
    )
    assert router.shadow is not None
    router.shadow.charge(1.5)  # over the cap: no more shadow traffic
    assert all(
        router.decide(RouteRequest(model="small", request_id=i)).shadow_model is None for i in ids
    )
    # Never shadow a request to the model that answers it.
    assert Router(table).decide(RouteRequest(model="big", request_id="req-3")).shadow_model is None


def test_shadow_gate_zero_rate() -> None:
    import random

    assert not ShadowGate(0.0, 0.0, random.Random(1)).sample("x")


def test_vote_and_judge() -> None:
    result = vote(["The answer is 42.", "Final answer: 42", "answer: 41"])
    assert result.winner == 0 and result.support == pytest.approx(2 / 3)
    assert vote(["A", "B"]).winner == 0  # tie: the first (highest-priority) model
    with pytest.raises(ValueError):
        vote([])
    msgs = judge_messages("q?", ["one", "two"])
    assert "Answer 2:\ntwo" in msgs[-1]["content"]
    assert parse_judge("Best: 2", 2) == 1
    assert parse_judge("answer 7", 2) is None
    assert parse_judge("I prefer the first one", 2) is None
