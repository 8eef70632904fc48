"""Running a route decision's cascade (FrugalGPT) for a non-streamed chat request.

The router plans the cascade (``RouteDecision.cascade_plan``) and the checks
are pure functions in ``routing.cascade``; this module does the I/O: try the
cheapest model, check its answer, escalate to the next model when the check
fails. The client sees one answer (the accepted one, or the last model's).
Every attempt is paid for, so every escalated attempt and every verification
call becomes its own usage record (``cascade_escalated`` marks the rejected
answers: the operator's router learner reads them as failures of that model
on that task kind) and is accounted in the local budget gate.
"""

from __future__ import annotations

import time
from typing import Any

from switchman_protocol.v1 import routes_pb2, usage_pb2
from switchman_sidecar.adapters import Adapter
from switchman_sidecar.pipeline import ApiError, Exchange, Pipeline
from switchman_sidecar.routing import (
    CascadePlan,
    Check,
    check_json,
    check_logprobs,
    parse_confidence,
    verification_messages,
)
from switchman_sidecar.routing.cascade import logprobs_of
from switchman_sidecar.table import PROVIDER_NAMES
from switchman_sidecar.usage import Usage, cost_of, estimate_tokens

__all__ = ["answer_text", "question_text", "record_attempt", "run_cascade"]

#: Output tokens a grader may use for its one-number reply.
GRADER_MAX_TOKENS = 8


def answer_text(result: dict[str, Any]) -> str:
    choices = result.get("choices") or []
    message = (choices[0].get("message") or {}) if choices else {}
    content = message.get("content")
    return content if isinstance(content, str) else ""


def question_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    p["text"]
                    for p in content
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
    return ""


def record_attempt(
    p: Pipeline,
    ex: Exchange,
    model: routes_pb2.Model,
    usage: Usage,
    reason: str,
    escalated: bool,
) -> None:
    """A usage record for an attempt that is not the request's final answer."""
    cost = cost_of(usage, model.price)
    # Local budget view: the gate learns the spend until the operator counts it.
    p.budget.spent(cost)
    table = ex.table
    p.submit_record(
        usage_pb2.UsageRecord(
            request_id=ex.request_id,
            timestamp_ms=int(time.time() * 1000),
            team=table.table.team if table else "",
            model=model.name,
            provider=PROVIDER_NAMES.get(model.provider, ""),
            input_tokens=usage.input,
            cached_input_tokens=usage.cached,
            output_tokens=usage.output,
            cost=cost,
            outcome=usage_pb2.OUTCOME_SUCCESS,
            estimated=usage.estimated,
            task_kind=ex.decision.task_kind if ex.decision else "",
            reason=reason,
            cascade_escalated=escalated,
        )
    )


async def _grade(
    p: Pipeline,
    ex: Exchange,
    grader: routes_pb2.Model,
    question: str,
    answer: str,
    headers: dict[str, str],
) -> Check:
    body = {
        "model": grader.name,
        "messages": verification_messages(question, answer),
        "max_tokens": GRADER_MAX_TOKENS,
        "temperature": 0,
    }
    try:
        model, adapter, raw = await p.unary(
            ex, [grader], lambda a, m, o: a.chat_call(m, o, body, False), headers
        )
        result, usage = adapter.chat_result(raw, model)
    except (ApiError, ValueError, TypeError, KeyError) as exc:
        return Check(0.0, f"grader {grader.name} failed: {exc}")
    record_attempt(p, ex, model, usage or Usage(estimated=True), "cascade-check", False)
    return parse_confidence(answer_text(result))


async def _check(
    p: Pipeline,
    ex: Exchange,
    plan: CascadePlan,
    model: routes_pb2.Model,
    result: dict[str, Any],
    body: dict[str, Any],
    headers: dict[str, str],
) -> Check:
    if plan.check == "json":
        return check_json(answer_text(result))
    if plan.check == "logprob":
        choices = result.get("choices") or [{}]
        return check_logprobs(logprobs_of(choices[0]))
    assert ex.table is not None
    grader = model if plan.check == "self_check" else ex.table.models.get(plan.verifier_model or "")
    if grader is None:
        return Check(0.0, "no verifier model")
    return await _grade(p, ex, grader, question_text(body), answer_text(result), headers)


async def run_cascade(
    p: Pipeline,
    ex: Exchange,
    candidates: list[routes_pb2.Model],
    body: dict[str, Any],
    headers: dict[str, str],
    plan: CascadePlan,
) -> tuple[routes_pb2.Model, Adapter, bytes]:
    """Like ``Pipeline.unary``, but tries the plan's models cheapest first."""
    assert ex.table is not None
    table = ex.table
    eligible = {m.name for m in candidates}
    steps = [table.models[n] for n in plan.models if n in table.models]
    # Models the pipeline filtered out (compliance, API, context window) are skipped.
    steps = [m for m in steps if m.name in eligible] or steps[-1:]
    send = {**body, "logprobs": True} if plan.check == "logprob" else body
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        tries = [step, *[m for m in candidates if m.name != step.name]] if last else [step]
        try:
            model, adapter, raw = await p.unary(
                ex, tries, lambda a, m, o: a.chat_call(m, o, send, False), headers
            )
        except ApiError:
            if last:
                raise
            continue  # an upstream failure escalates like a failed check
        if last:
            return model, adapter, raw
        try:
            result, usage = adapter.chat_result(raw, model)
        except (ValueError, TypeError, KeyError):
            ex.tried.append(f"{model.name}:cascade-unreadable")
            continue
        check = await _check(p, ex, plan, model, result, body, headers)
        if check.passes(plan.threshold):
            assert ex.table is not None
            ex.answered_by(ex.table.facts[model.name])
            return model, adapter, raw
        ex.tried.append(f"{model.name}:cascade-rejected")
        spent = usage or Usage(
            input=ex.input_estimate,
            output=estimate_tokens(len(answer_text(result))),
            estimated=True,
        )
        reason = ex.decision.reason if ex.decision else ""
        record_attempt(p, ex, model, spent, f"{reason}/cascade", True)
    raise ApiError(502, "no model of the cascade could answer", "server_error", "upstream_error")
