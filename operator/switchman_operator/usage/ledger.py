"""Durable counting: usage charges → TeamBudget status, with group commit.

One worker per (namespace, team) drains every charge queued for that team,
reads the TeamBudget, applies them all with ``apply_charges`` and writes the
status back with a resourceVersion precondition (PUT). On 409 it re-reads and
recomputes — the sequences in the fresh status make the retry idempotent even
when another replica counted some of the same batches meanwhile. Only after
the write succeeds are the waiting streams told to ACK. Grouping keeps the
number of API writes per team at about one per round trip, whatever the
number of sidecars.

The object a write returns is kept and is the base of the next commit, so a
busy team costs one API call per commit, not a read and a write: if anyone
else wrote the TeamBudget meanwhile, the resourceVersion precondition fails
(409) and that commit re-reads, as it would have anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from ..api.teambudget import TeamBudgetStatus
from ..kube import Conflict, NotFound
from ..resources import BudgetObject, parse_budget
from .accounting import MAX_SEQUENCE_ENTRIES, Charge, apply_charges

__all__ = ["ChargeResult", "Ledger", "LedgerApi"]

log = logging.getLogger(__name__)

#: Attempts at a status write before the batches are left unacknowledged (resent later).
MAX_WRITE_ATTEMPTS = 20


class LedgerApi(Protocol):
    async def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]: ...
    async def replace_status(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def pod_names(self, namespace: str) -> set[str]: ...


@dataclass(frozen=True, slots=True)
class ChargeResult:
    counted: bool  # False: already counted before (a resend) or no TeamBudget for the team
    budget: str | None  # TeamBudget name it went to


@dataclass
class _Pending:
    charge: Charge
    future: asyncio.Future[ChargeResult]


@dataclass
class _TeamQueue:
    items: list[_Pending] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Ledger:
    """Counts charges into TeamBudget status exactly once; see the module docstring."""

    def __init__(
        self,
        api: LedgerApi,
        find_budget: Callable[[str, str], BudgetObject | None],
        on_written: Callable[[BudgetObject], Awaitable[None]] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        on_conflict: Callable[[], None] = lambda: None,
        on_counted: Callable[[int], None] = lambda n: None,
        on_commit: Callable[[int, float], None] = lambda batches, seconds: None,
    ) -> None:
        self.api = api
        self.find_budget = find_budget
        self.on_written = on_written
        self.clock = clock
        self.on_conflict = on_conflict
        self.on_counted = on_counted
        self.on_commit = on_commit
        self._queues: dict[tuple[str, str], _TeamQueue] = {}
        # Entries in status.sequences at which the next prune lists the namespace's pods:
        # twice what the last prune kept. With more live sidecars than
        # MAX_SEQUENCE_ENTRIES a fixed threshold listed every pod on every write (1,000
        # pods: ~3 MB of JSON per commit); doubling keeps the bound and amortises it.
        self._prune_at: dict[tuple[str, str], int] = {}
        # (namespace, TeamBudget) -> the body our last write returned and its parse.
        self._last: dict[tuple[str, str], tuple[dict[str, Any], BudgetObject]] = {}
        self._closed = False

    async def charge(self, namespace: str, team: str, charge: Charge) -> ChargeResult:
        """Count ``charge`` for ``team``; returns once it is durable (or raises)."""
        if self._closed:
            raise RuntimeError("ledger closed")
        key = (namespace, team)
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = _TeamQueue()
        if q.task is None or q.task.done():
            q.task = asyncio.create_task(self._worker(key, q), name=f"ledger {namespace}/{team}")
        fut: asyncio.Future[ChargeResult] = asyncio.get_running_loop().create_future()
        q.items.append(_Pending(charge, fut))
        q.wake.set()
        return await fut

    async def refresh(self, namespace: str, team: str) -> None:
        """Roll the period over / recompute derived fields with no new usage (timer)."""
        await self.charge(namespace, team, Charge(pod="", boot_id="", sequence=0, records=()))

    async def close(self) -> None:
        self._closed = True
        tasks = [q.task for q in self._queues.values() if q.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for q in self._queues.values():
            for p in q.items:
                if not p.future.done():
                    p.future.set_exception(RuntimeError("ledger closed"))

    async def _worker(self, key: tuple[str, str], q: _TeamQueue) -> None:
        namespace, team = key
        while True:
            await q.wake.wait()
            q.wake.clear()
            batch, q.items = q.items, []
            if not batch:
                continue
            started = time.monotonic()
            try:
                results = await self._commit(namespace, team, [p.charge for p in batch])
            except Exception as exc:  # every waiter must hear about it
                log.warning("usage for %s/%s not counted: %s", namespace, team, exc)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            self.on_commit(len(batch), time.monotonic() - started)
            for p, r in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(r)

    async def _commit(self, namespace: str, team: str, charges: list[Charge]) -> list[ChargeResult]:
        budget = self.find_budget(namespace, team)
        if budget is None:
            return [ChargeResult(False, None)] * len(charges)
        real = [c for c in charges if c.sequence > 0]
        key = (namespace, budget.name)
        live: set[str] | None = None
        for _attempt in range(MAX_WRITE_ATTEMPTS):
            cached = self._last.pop(key, None)
            if cached is not None:
                body, current = cached
                status = current.status
            else:
                try:
                    body = await self.api.get_object("TeamBudget", namespace, budget.name)
                except NotFound:
                    return [ChargeResult(False, None)] * len(charges)
                try:
                    current = parse_budget(body)
                    status = TeamBudgetStatus.model_validate(body.get("status") or {})
                except ValidationError as exc:
                    raise RuntimeError(f"TeamBudget {budget.name} unreadable: {exc}") from exc
            threshold = max(MAX_SEQUENCE_ENTRIES, self._prune_at.get(key, 0))
            if live is None and len(status.sequences or {}) >= threshold:
                live = await self.api.pod_names(namespace)
            new, counted = apply_charges(status, current.spec, real, self.clock(), live)
            if live is not None:
                self._prune_at[key] = 2 * len(new.sequences or {})
            if new == status:
                written, parsed = body, current
            else:
                body = {**body, "status": new.model_dump(by_alias=True, exclude_none=True)}
                try:
                    written = await self.api.replace_status("TeamBudget", body)
                except Conflict:
                    self.on_conflict()
                    continue
                # The spec and metadata as written; the status is the one just computed
                # (re-validating the whole sequence map per commit cost as much as the rest).
                parsed = dataclasses.replace(parse_budget({**written, "status": {}}), status=new)
            self._last[key] = (written, parsed)
            self.on_counted(sum(len(c.records) for c, n in zip(real, counted, strict=True) if n))
            if self.on_written is not None:
                await self.on_written(parsed)
            it = iter(counted)
            return [
                ChargeResult(next(it) if c.sequence > 0 else False, budget.name) for c in charges
            ]
        raise RuntimeError(f"TeamBudget {namespace}/{budget.name}: too many write conflicts")
