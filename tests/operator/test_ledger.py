"""The ledger's group commit against an in-memory API with resourceVersion preconditions:
batches waiting together are written together, each counted once, a write is based on
the previous one's result, and another writer in between costs a re-read, never a count."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any

from switchman_operator.kube import Conflict, NotFound
from switchman_operator.resources import BudgetObject, parse_budget
from switchman_operator.usage.accounting import Charge
from switchman_operator.usage.ledger import Ledger
from switchman_protocol.v1 import usage_pb2

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
BODY: dict[str, Any] = {
    "apiVersion": "switchman.dev/v1alpha1",
    "kind": "TeamBudget",
    "metadata": {"namespace": "ns", "name": "web", "resourceVersion": "1"},
    "spec": {"team": "web", "limit": 100.0},
}


class MemoryApi:
    """One TeamBudget; replace_status needs the current resourceVersion (else 409)."""

    def __init__(self) -> None:
        self.body = copy.deepcopy(BODY)
        self.gets = self.writes = 0

    async def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        self.gets += 1
        if self.body is None:
            raise NotFound(name)
        await asyncio.sleep(0)
        return copy.deepcopy(self.body)

    async def replace_status(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.01)  # a round trip: charges arriving meanwhile wait together
        if body["metadata"]["resourceVersion"] != self.body["metadata"]["resourceVersion"]:
            raise Conflict("stale")
        self.writes += 1
        self.body = copy.deepcopy(body)
        self.body["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(self.body)

    async def pod_names(self, namespace: str) -> set[str]:
        return set()

    def other_writer(self, status: dict[str, Any]) -> None:
        """Someone else (another replica) writes the status."""
        self.body["status"] = status
        self.body["metadata"]["resourceVersion"] += "0"


def charge(pod: str, seq: int, cost: float = 0.25) -> Charge:
    record = usage_pb2.UsageRecord(model="mini", cost=cost, input_tokens=10, output_tokens=5)
    return Charge(pod, "boot", seq, [record])


def make(api: MemoryApi) -> Ledger:
    budget = parse_budget(BODY)
    return Ledger(api, lambda ns, team: budget if team == "web" else None, clock=lambda: NOW)


def test_waiting_charges_share_a_write_and_the_next_commit_needs_no_read() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        ledger = make(api)
        first = await asyncio.gather(
            *(ledger.charge("ns", "web", charge(f"p{i}", 1)) for i in range(20))
        )
        assert all(r.counted for r in first)
        assert api.writes <= 2  # the first charge alone, the other 19 together
        gets = api.gets
        again = await asyncio.gather(
            *(ledger.charge("ns", "web", charge(f"p{i}", 2)) for i in range(20))
        )
        assert all(r.counted for r in again)
        assert api.gets == gets  # based on the object the last write returned
        status = api.body["status"]
        assert status["requests"] == 40 and status["spentMicros"] == 40 * 250_000
        await ledger.close()

    asyncio.run(scenario())


def test_another_writer_costs_a_reread_and_nothing_is_counted_twice() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        ledger = make(api)
        assert (await ledger.charge("ns", "web", charge("a", 1))).counted
        # Another replica counted a's batch 2 (and only it) in between.
        other = copy.deepcopy(api.body["status"])
        other["sequences"]["a/boot"] = 2
        other["spentMicros"] += 250_000
        other["requests"] += 1
        api.other_writer(other)
        gets = api.gets
        results = await asyncio.gather(
            ledger.charge("ns", "web", charge("a", 2)), ledger.charge("ns", "web", charge("b", 1))
        )
        assert api.gets == gets + 1  # the cached base was stale: 409, then one re-read
        assert [r.counted for r in results] == [False, True]
        status = api.body["status"]
        assert status["requests"] == 3 and status["spentMicros"] == 750_000
        assert status["sequences"] == {"a/boot": 2, "b/boot": 1}
        await ledger.close()

    asyncio.run(scenario())


def test_a_deleted_budget_is_read_again_not_written_from_memory() -> None:
    async def scenario() -> None:
        api = MemoryApi()
        seen: list[BudgetObject] = []

        async def written(budget: BudgetObject) -> None:
            seen.append(budget)

        budget = parse_budget(BODY)
        ledger = Ledger(api, lambda ns, team: budget, on_written=written, clock=lambda: NOW)
        assert (await ledger.charge("ns", "web", charge("a", 1))).counted
        assert seen[-1].status.requests == 1 and seen[-1].spec.team == "web"
        api.body = None  # deleted: the write from the cached base fails, the re-read says so
        api.replace_status = _gone  # type: ignore[method-assign]
        result = await ledger.charge("ns", "web", charge("a", 2))
        assert not result.counted and result.budget is None
        await ledger.close()

    asyncio.run(scenario())


async def _gone(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    raise Conflict("the object was deleted")
