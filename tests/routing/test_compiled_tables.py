"""Every table the operator compiles (its golden files) is accepted by the sidecar's Router,
and the example policy routes as its comments say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from switchman_protocol.v1 import routes_pb2 as pb
from switchman_sidecar.routing import BudgetView, Router, RouteRequest

GOLDEN = Path(__file__).resolve().parents[1] / "operator" / "golden"


def compiled(name: str) -> pb.RouteTable | None:
    data = json.loads((GOLDEN / name).read_text())
    if not data.get("table"):
        return None
    return json_format.ParseDict(data["table"], pb.RouteTable())


WITH_TABLES = sorted(p.name for p in GOLDEN.glob("*.json") if compiled(p.name) is not None)


def test_golden_cases_include_compiled_tables() -> None:
    assert len(WITH_TABLES) >= 3


@pytest.mark.parametrize("name", WITH_TABLES)
def test_router_accepts_every_compiled_table(name: str) -> None:
    table = compiled(name)
    assert table is not None
    router = Router(table)
    for model in table.models:
        assert router.decide(RouteRequest(model=model.name)).candidates[0] == model.name


def test_example_checkout_policy_routes_as_documented() -> None:
    table = compiled("example-checkout.json")
    assert table is not None
    router = Router(table)
    premium = router.decide(
        RouteRequest(model="gpt-4o-mini", headers={"x-tier": "premium"}, prompt_text="hi")
    )
    assert (premium.candidates[0], premium.rule) == ("claude-sonnet", "premium-tier")
    near = router.decide(
        RouteRequest(model="auto", prompt_text="hello", budget=BudgetView("SoftLimited", 85.0))
    )
    assert near.rule == "near-budget" and near.strategy == "cost"
    # Balanced with a 0.75 bar; llama-local (0.70 on chat) does not clear it for chat.
    auto = router.decide(RouteRequest(model="auto", prompt_text="hello there"))
    assert auto.reason == "strategy:balanced"
    assert auto.candidates[0] != "llama-local"
    assert auto.scores[auto.candidates[0]] >= 0.75
