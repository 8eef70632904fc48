"""Running a route decision's ensemble for a non-streamed chat request.

A rule marks a request high-stakes with an ensemble: the request goes to every
model of the plan at once, and one answer is returned — the majority answer
(``vote``) or the one a judge model picks (``judge``; an unusable verdict
falls back to the vote). Every answer is paid for: the answers not returned
and the judge's call are usage records of their own under the request's id.
Every member's answer also becomes feedback for the router learner: 1 for the
answer returned, else its agreement with it (source ``ensemble``, or
``judge`` when the judge picked).
Aggregation is pure (``routing.ensemble``); this module does the I/O.
"""

from __future__ import annotations

import asyncio
from typing import Any

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.adapters import Adapter
from switchman_sidecar.cascade import answer_text, question_text, record_attempt
from switchman_sidecar.pipeline import ApiError, Exchange, Pipeline
from switchman_sidecar.routing import EnsemblePlan, judge_messages, parse_judge, vote
from switchman_sidecar.routing.ensemble import shadow_agreement
from switchman_sidecar.usage import Usage, estimate_tokens

__all__ = ["run_ensemble"]

#: Output tokens the judge may use for its verdict.
JUDGE_MAX_TOKENS = 16

_Answer = tuple[routes_pb2.Model, Adapter, bytes, dict[str, Any], Usage]


async def _judge(
    p: Pipeline,
    ex: Exchange,
    judge: routes_pb2.Model,
    question: str,
    texts: list[str],
    headers: dict[str, str],
) -> int | None:
    body = {
        "model": judge.name,
        "messages": judge_messages(question, texts),
        "max_tokens": JUDGE_MAX_TOKENS,
        "temperature": 0,
    }
    try:
        model, adapter, raw = await p.unary(
            ex, [judge], lambda a, m, o: a.chat_call(m, o, body, False), headers
        )
        result, usage = adapter.chat_result(raw, model)
    except (ApiError, ValueError, TypeError, KeyError):
        return None
    record_attempt(p, ex, model, usage or Usage(estimated=True), "ensemble-judge", False)
    return parse_judge(answer_text(result), len(texts))


async def run_ensemble(
    p: Pipeline,
    ex: Exchange,
    candidates: list[routes_pb2.Model],
    body: dict[str, Any],
    headers: dict[str, str],
    plan: EnsemblePlan,
) -> tuple[routes_pb2.Model, Adapter, bytes]:
    """Like ``Pipeline.unary``, but asks every plan model and returns the aggregate's pick."""
    assert ex.table is not None
    table = ex.table
    eligible = {m.name for m in candidates} | set(plan.models)
    members = [table.models[n] for n in plan.models if n in table.models and n in eligible]
    if len(members) < 2:
        return await p.unary(
            ex, candidates, lambda a, m, o: a.chat_call(m, o, body, False), headers
        )

    async def ask(model: routes_pb2.Model) -> _Answer:
        used, adapter, raw = await p.unary(
            ex, [model], lambda a, m, o: a.chat_call(m, o, body, False), headers
        )
        result, usage = adapter.chat_result(raw, used)
        spent = usage or Usage(
            input=ex.input_estimate,
            output=estimate_tokens(len(answer_text(result))),
            estimated=True,
        )
        return used, adapter, raw, result, spent

    outcomes = await asyncio.gather(*(ask(m) for m in members), return_exceptions=True)
    answers: list[_Answer] = []
    last_error: BaseException | None = None
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, (ApiError, ValueError, TypeError, KeyError)):
                raise outcome
            last_error = outcome
        else:
            answers.append(outcome)
    if not answers:
        if isinstance(last_error, ApiError):
            raise last_error
        raise ApiError(502, "no model of the ensemble could answer", "server_error")
    texts = [answer_text(a[3]) for a in answers]
    winner = vote(texts).winner
    winner_by_judge = False
    if plan.aggregate == "judge" and plan.judge_model and plan.judge_model in table.models:
        picked = await _judge(
            p, ex, table.models[plan.judge_model], question_text(body), texts, headers
        )
        if picked is not None:
            winner, winner_by_judge = picked, True
    reason = ex.decision.reason if ex.decision else ""
    task = ex.decision.task_kind if ex.decision else ""
    source = "judge" if plan.aggregate == "judge" and winner_by_judge else "ensemble"
    for i, (model, _, _, _, usage) in enumerate(answers):
        if i != winner:
            record_attempt(p, ex, model, usage, f"{reason}/ensemble", False)
        if p.emit_feedback is not None and len(answers) >= 2:
            # Each member is scored by its agreement with the answer returned (the router
            # learner's evidence of which models get this task kind right).
            score = 1.0 if i == winner else shadow_agreement(texts[i], texts[winner])
            p.emit_feedback(ex.request_id, model.name, task, score, source)
    model, adapter, raw, _, _ = answers[winner]
    ex.answered_by(table.facts[model.name])
    return model, adapter, raw
