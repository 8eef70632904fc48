"""Shadow routing: a sample of answered requests also goes to a reference model.

The router decides (``RouteDecision.shadow_model``: a deterministic sample
under the policy's spend cap); this module runs it, *after* the client has
its answer, in a background task the client never waits for and never sees:

* the same body the answering model got (already PII-redacted, with the
  decision's output budget) goes to the shadow model, bounded by the
  table's per-try timeout, that model only (no fallback);
* its cost is a usage record with ``shadow = true`` (reason ``shadow``) under
  the request's id, charged to the team like any spend (it is real provider
  money; the local budget gate learns it too) but only up to the policy's
  ``max_spend``: no shadow starts once the spend reaches the cap. The router's
  gate counts per route table; this runner keeps the spend per policy for the
  budget period (``BudgetState.period_start``; the process's life in
  standalone mode), so a new route table (every feedback update pushes one)
  does not reset the cap. No shadow starts while the team's budget is
  soft-limited or exhausted;
* the two answers are compared cheaply (``shadow_agreement``: same
  normalised answer → 1, else word overlap) and the score becomes a
  ``Feedback(source="shadow")`` for the answering model and task kind.

Tasks are owned (a tracked set, cancelled by ``close``) and bounded: when
``max_concurrent`` shadows are in flight a new sample is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from switchman_protocol.v1 import budget_pb2, routes_pb2, usage_pb2
from switchman_sidecar.cascade import answer_text
from switchman_sidecar.feedback import FeedbackLog
from switchman_sidecar.pipeline import ApiError, Exchange, Pipeline
from switchman_sidecar.routing.ensemble import shadow_agreement
from switchman_sidecar.table import PROVIDER_NAMES
from switchman_sidecar.usage import Usage, cost_of, estimate_tokens

__all__ = ["ShadowRunner"]

log = logging.getLogger("switchman.shadow")


class ShadowRunner:
    def __init__(self, pipeline: Pipeline, feedback: FeedbackLog, max_concurrent: int = 4) -> None:
        self.pipeline = pipeline
        self.feedback = feedback
        self.max_concurrent = max_concurrent
        self.tasks: set[asyncio.Task[None]] = set()
        self.spent: dict[str, float] = {}
        """Shadow spend (USD) per policy in the current budget period."""
        self.started = 0
        self.completed = 0
        self.failed = 0
        self.dropped = 0
        self._closed = False
        self._period = ""

    def after_answer(
        self,
        ex: Exchange,
        body: dict[str, Any],
        result: dict[str, Any],
        headers: dict[str, str],
    ) -> None:
        """Called once the client's answer is sent; starts the shadow when one is due."""
        decision, table, answered = ex.decision, ex.table, ex.model
        if decision is None or table is None or answered is None or not decision.shadow_model:
            return
        shadow = table.models.get(decision.shadow_model)
        if shadow is None or shadow.name == answered.name or self._closed:
            return
        state = self.pipeline.budget.state
        if state is not None:
            if state.condition > budget_pb2.BUDGET_CONDITION_OK:
                return  # a team near or over its limit pays for no experiments
            if state.period_start != self._period:  # max_spend is per budget period
                self._period = state.period_start
                self.spent.clear()
        cap = table.table.shadow.max_spend
        if cap > 0 and self.spent.get(self._key(ex), 0.0) >= cap:
            return
        if len(self.tasks) >= self.max_concurrent:
            self.dropped += 1
            return
        self.started += 1
        task = asyncio.create_task(
            self._run(ex, shadow, answered, body, answer_text(result), headers),
            name=f"switchman-shadow-{ex.request_id}",
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    def _key(ex: Exchange) -> str:
        table = ex.table.table if ex.table is not None else None
        return table.policies[0] if table is not None and table.policies else ""

    async def _run(
        self,
        ex: Exchange,
        shadow: routes_pb2.Model,
        answered: routes_pb2.Model,
        body: dict[str, Any],
        answer: str,
        headers: dict[str, str],
    ) -> None:
        assert ex.table is not None and ex.decision is not None
        table = ex.table
        p = self.pipeline
        # A separate exchange: the shadow's attempts must not touch the request's record.
        sx = Exchange(api=ex.api, request_id=ex.request_id, table=table, decision=ex.decision)
        sx.input_estimate = ex.input_estimate
        started = time.perf_counter()
        try:
            async with asyncio.timeout(table.policy.per_try_timeout_s or 30.0):
                model, adapter, raw = await p.unary(
                    sx, [shadow], lambda a, m, o: a.chat_call(m, o, body, False), headers
                )
            result, usage = adapter.chat_result(raw, model)
        except (ApiError, TimeoutError, ValueError, TypeError, KeyError) as exc:
            self.failed += 1
            log.info("shadow request %s to %s failed: %s", ex.request_id, shadow.name, exc)
            return
        reference = answer_text(result)
        spent = usage or Usage(
            input=ex.input_estimate, output=estimate_tokens(len(reference)), estimated=True
        )
        if sx.reserved and model.name in sx.reserved:  # the model's TPM bucket
            p.limits.settle(
                model.name, sx.reserved[model.name], spent.input + spent.output, time.monotonic()
            )
        cost = cost_of(spent, model.price)
        key = self._key(ex)
        self.spent[key] = self.spent.get(key, 0.0) + cost
        p.budget.spent(cost)  # local view of spend
        if table.router.shadow is not None:
            table.router.shadow.charge(cost)
        p.submit_record(
            usage_pb2.UsageRecord(
                request_id=ex.request_id,
                timestamp_ms=int(time.time() * 1000),
                team=table.table.team,
                model=model.name,
                provider=PROVIDER_NAMES.get(model.provider, ""),
                input_tokens=spent.input,
                cached_input_tokens=spent.cached,
                output_tokens=spent.output,
                reasoning_tokens=spent.reasoning,
                cost=cost,
                outcome=usage_pb2.OUTCOME_SUCCESS,
                estimated=spent.estimated,
                task_kind=ex.decision.task_kind,
                reason="shadow",
                shadow=True,
                latency_ms=int((time.perf_counter() - started) * 1000),
            )
        )
        score = shadow_agreement(answer, reference)
        self.feedback.emit(ex.request_id, answered.name, ex.decision.task_kind, score, "shadow")
        self.completed += 1

    async def close(self) -> None:
        """Cancel what is in flight (shutdown must not wait on reference models)."""
        self._closed = True
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def status(self) -> dict[str, object]:
        return {
            "inFlight": len(self.tasks),
            "started": self.started,
            "completed": self.completed,
            "failed": self.failed,
            "dropped": self.dropped,
            "spent": dict(self.spent),
        }
