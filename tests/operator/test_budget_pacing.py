"""BudgetState pacing in the hub: spend-only changes at most once per interval, conditions at once.

Pure hub (no sockets): the ACK is fed back as the DiscoveryRequest a sidecar
would send, and the deferred wake-up is the connection's own event.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from operator_testkit import objects

from switchman_operator.discovery.hub import Connection, Hub
from switchman_operator.metrics import OperatorMetrics
from switchman_operator.resources import PodInfo
from switchman_operator.world import World
from switchman_protocol import xds
from switchman_protocol.v1 import budget_pb2

POD = PodInfo("checkout", "checkout-api-7d9f", {"app": "checkout-api"})


def budget_body(spent_micros: int, state: str) -> dict[str, Any]:
    found = next(o for o in objects("example-checkout") if o["kind"] == "TeamBudget")
    body: dict[str, Any] = copy.deepcopy(found)
    body["status"] = {
        "spentMicros": spent_micros,
        "spent": spent_micros / 1e6,
        "remaining": 500 - spent_micros / 1e6,
        "state": state,
    }
    return body


def budget_pushes(hub: Hub, conn: Connection) -> list[budget_pb2.BudgetState]:
    """Send what is due and ACK it at once, as a sidecar would; the BudgetStates sent."""
    out = []
    for resp in hub.next_responses(conn):
        hub.on_request(
            conn,
            xds.DiscoveryRequest(
                node=xds.Node(id=POD.key),
                type_url=resp.type_url,
                version_info=resp.version_info,
                response_nonce=resp.nonce,
            ),
        )
        if resp.type_url == xds.BUDGET_STATE_TYPE:
            out.append(xds.unpack(resp.resources[0], budget_pb2.BudgetState))
    return out


async def test_spend_only_changes_are_paced_and_condition_changes_are_not() -> None:
    world = World()
    for body in objects("example-checkout"):
        if body["kind"] != "TeamBudget":
            world.upsert(body)
    world.upsert(budget_body(0, "Ok"))
    hub = Hub(world, OperatorMetrics(), budget_interval=2.0)
    conn = hub.connect(POD)
    for type_url in (xds.ROUTE_TABLE_TYPE, xds.BUDGET_STATE_TYPE):
        hub.on_request(conn, xds.DiscoveryRequest(node=xds.Node(id=POD.key), type_url=type_url))
    first = budget_pushes(hub, conn)
    assert [s.spent for s in first] == [0.0]  # the first one is never held back

    conn.wake.clear()
    world.upsert(budget_body(1_000_000, "Ok"))  # spend moved, condition did not
    assert budget_pushes(hub, conn) == []
    # The held-back state goes out when the interval is over (the hub wakes the stream).
    await asyncio.wait_for(conn.wake.wait(), timeout=5)
    assert [s.spent for s in budget_pushes(hub, conn)] == [1.0]

    world.upsert(budget_body(500_000_000, "Exhausted"))  # right after a push: not paced
    exhausted = budget_pushes(hub, conn)
    assert [s.condition for s in exhausted] == [budget_pb2.BUDGET_CONDITION_EXHAUSTED]


async def test_no_interval_means_no_pacing() -> None:
    world = World()
    for body in objects("example-checkout"):
        world.upsert(body)
    hub = Hub(world, OperatorMetrics())
    conn = hub.connect(POD)
    hub.on_request(
        conn, xds.DiscoveryRequest(node=xds.Node(id=POD.key), type_url=xds.BUDGET_STATE_TYPE)
    )
    assert len(budget_pushes(hub, conn)) == 1
    for spent in (1, 2, 3):
        world.upsert(budget_body(spent * 1_000_000, "Ok"))
        assert [s.spent for s in budget_pushes(hub, conn)] == [float(spent)]


def test_allowance_is_sliced_across_sidecars_and_replicas() -> None:
    """One replica's slices add up to at most what remains; with k replicas, each hands out
    at most 1/k of it, so all replicas together never promise more than remains."""
    allowances = {}
    for replicas, pods in ((1, 1), (1, 3), (2, 1), (3, 3)):
        world = World()
        for body in objects("example-checkout"):
            if body["kind"] != "TeamBudget":
                world.upsert(body)
        world.upsert(budget_body(100_000_000, "Ok"))  # 400 of 500 remain
        hub = Hub(world, OperatorMetrics(), replicas=replicas)
        conns = [
            hub.connect(PodInfo(POD.namespace, f"{POD.name}-{i}", POD.labels)) for i in range(pods)
        ]
        for conn in conns:
            hub.on_request(
                conn,
                xds.DiscoveryRequest(
                    node=xds.Node(id=conn.pod.key), type_url=xds.BUDGET_STATE_TYPE
                ),
            )
        states = [budget_pushes(hub, conn)[0] for conn in conns]
        assert len({s.allowance for s in states}) == 1
        allowances[(replicas, pods)] = states[0].allowance
        assert replicas * pods * states[0].allowance <= 400 + 1e-9
    # pods rounded up to a power of two (3 -> 4), times the replicas
    assert allowances == {(1, 1): 400.0, (1, 3): 100.0, (2, 1): 200.0, (3, 3): 400 / 12}


def test_state_says_which_of_this_pods_batches_its_spend_includes() -> None:
    world = World()
    for body in objects("example-checkout"):
        if body["kind"] != "TeamBudget":
            world.upsert(body)
    body = budget_body(2_000_000, "Ok")
    body["status"]["sequences"] = {f"{POD.name}/boot-a": 7, f"{POD.name}/boot-b": 2, "other/x": 9}
    world.upsert(body)
    hub = Hub(world, OperatorMetrics())
    conn = hub.connect(POD)
    hub.on_request(
        conn, xds.DiscoveryRequest(node=xds.Node(id=POD.key), type_url=xds.BUDGET_STATE_TYPE)
    )
    (state,) = budget_pushes(hub, conn)
    assert state.counted_known
    assert dict(state.counted) == {"boot-a": 7, "boot-b": 2}  # never another pod's


def test_spend_alone_does_not_invalidate_route_tables_but_a_spec_change_does() -> None:
    world = World()
    for body in objects("example-checkout"):
        world.upsert(body)
    before = world.version
    world.upsert(budget_body(3_000_000, "Ok"))  # status only
    assert world.version == before
    assert world.budget_for(POD.namespace, "checkout") is not None
    budget = world.budget_for(POD.namespace, "checkout")
    assert budget is not None and budget.status.spent_micros == 3_000_000
    changed = budget_body(3_000_000, "Ok")
    changed["spec"]["limit"] = 900
    world.upsert(changed)
    assert world.version == before + 1


async def test_push_rate_cap_stretches_the_interval_with_the_number_of_sidecars() -> None:
    """3 sidecars at 1.5 pushes/s: each waits 2 s between spend-only pushes, not 0.05 s;
    a sidecar held back builds no state on the wake-ups before its turn."""
    world = World()
    for body in objects("example-checkout"):
        if body["kind"] != "TeamBudget":
            world.upsert(body)
    world.upsert(budget_body(0, "Ok"))
    hub = Hub(world, OperatorMetrics(), budget_interval=0.05, budget_rate=1.5)
    conns = [hub.connect(PodInfo(POD.namespace, f"{POD.name}-{i}", POD.labels)) for i in range(3)]
    for conn in conns:
        hub.on_request(
            conn,
            xds.DiscoveryRequest(node=xds.Node(id=conn.pod.key), type_url=xds.BUDGET_STATE_TYPE),
        )
    assert all(len(budget_pushes(hub, conn)) == 1 for conn in conns)
    conn = conns[0]
    conn.wake.clear()
    world.upsert(budget_body(1_000_000, "Ok"))
    assert budget_pushes(hub, conn) == []
    built: list[str] = []
    original = hub.desired

    def counting(c: Connection, type_url: str) -> Any:
        built.append(type_url)
        return original(c, type_url)

    hub.desired = counting  # type: ignore[method-assign,assignment]
    world.upsert(budget_body(2_000_000, "Ok"))
    assert budget_pushes(hub, conn) == [] and xds.BUDGET_STATE_TYPE not in built
    # The wake-up is scheduled 2 s after the push: it cannot have come after 0.5 s.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(conn.wake.wait(), timeout=0.5)
    await asyncio.wait_for(conn.wake.wait(), timeout=10)
    assert [s.spent for s in budget_pushes(hub, conn)] == [2.0]
    # A condition change is never held back by the cap either.
    world.upsert(budget_body(500_000_000, "Exhausted"))
    assert [s.condition for s in budget_pushes(hub, conn)] == [
        budget_pb2.BUDGET_CONDITION_EXHAUSTED
    ]


def test_world_budget_for_is_the_namespace_rule_without_the_copy() -> None:
    world = World()
    older = budget_body(0, "Ok")
    older["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    newer = copy.deepcopy(older)
    newer["metadata"]["name"] = "aaa-duplicate"  # sorts first by name, but is younger
    newer["metadata"]["creationTimestamp"] = "2026-06-01T00:00:00Z"
    for body in (newer, older):
        world.upsert(body)
    team = older["spec"]["team"]
    expected = world.resources(POD.namespace).budget_for(team)
    assert expected is not None and expected.name == older["metadata"]["name"]
    assert world.budget_for(POD.namespace, team) is expected
    assert world.budget_for(POD.namespace, "nobody") is None
    assert world.budget_for("elsewhere", team) is None
