"""Learning from outcomes (EvoRoute-style): feedback → per-(model, task) offsets.

Prompts never leave the sidecar, so the operator cannot retrain the heads on
live traffic. What it can learn is *where the router is wrong by task kind*:
for each (model, task kind) it keeps a forgetting average of observed scores
and turns the gap to the expected success rate into a logit offset that the
sidecar adds to that model's prediction (``adj/<model>/<task>`` in
``LearnedRouter.params``; the static strategies apply it to the pool's
declared quality too). A model that starts failing math loses math traffic
within a few dozen outcomes; one that recovers wins it back the same way.

Signals: explicit ratings, judge scores and shadow comparisons arrive as
``Feedback``; a usage record with ``cascade_escalated`` means its model's
answer failed the cascade check (score 0), unless a ``cascade`` feedback for
that request and model already says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from switchman_protocol.v1 import routes_pb2, usage_pb2

__all__ = ["MEMORY", "PSEUDO_COUNT", "update_router"]

#: Prior strength in outcomes: this many observations move the offset halfway.
PSEUDO_COUNT = 20.0
#: Outcomes remembered per (model, task); older ones fade proportionally.
MEMORY = 200.0
#: Offsets are clamped to this many logits, so feedback nudges and never flips blindly.
MAX_OFFSET = 4.0
ANY_TASK = "*"


def _logit(p: float) -> float:
    p = min(1 - 1e-4, max(1e-4, p))
    return math.log(p / (1 - p))


def _outcomes(
    records: Sequence[usage_pb2.UsageRecord], feedback: Sequence[usage_pb2.Feedback]
) -> list[tuple[str, str, float]]:
    out = []
    cascade_seen = set()
    for fb in feedback:
        if not fb.model or not 0.0 <= fb.score <= 1.0:
            continue
        if fb.source == "cascade":
            cascade_seen.add((fb.request_id, fb.model))
        out.append((fb.model, fb.task_kind or ANY_TASK, float(fb.score)))
    for rec in records:
        if rec.cascade_escalated and rec.model and (rec.request_id, rec.model) not in cascade_seen:
            out.append((rec.model, rec.task_kind or ANY_TASK, 0.0))
    return out


def update_router(
    params: routes_pb2.RouterParams,
    records: Sequence[usage_pb2.UsageRecord],
    feedback: Sequence[usage_pb2.Feedback],
    priors: Mapping[str, Mapping[str, float]] | None = None,
) -> routes_pb2.RouterParams:
    """New router parameters after a batch of outcomes; the input is not modified.

    ``priors`` (model → task kind → expected success, e.g. the pool's declared
    quality) is used where the trained router has no ``prior/<model>/<task>``;
    without either, the model's overall observed mean is its own prior (no
    offset until tasks differ). Deterministic: the same inputs give the same
    parameters, so the operator can recompute them idempotently.
    """
    out = routes_pb2.RouterParams()
    out.CopyFrom(params)
    outcomes = _outcomes(records, feedback)
    if not outcomes:
        return out
    p = out.learned.params
    touched = set()
    for model, task, score in outcomes:
        n_key, s_key = f"fb_n/{model}/{task}", f"fb_s/{model}/{task}"
        n, s = p.get(n_key, 0.0), p.get(s_key, 0.0)
        if n >= MEMORY:  # forget proportionally: an average over the last ~MEMORY outcomes
            s *= (MEMORY - 1) / n
            n = MEMORY - 1
        p[n_key], p[s_key] = n + 1.0, s + score
        touched.add((model, task))
    for model, task in sorted(touched):
        n, s = p[f"fb_n/{model}/{task}"], p[f"fb_s/{model}/{task}"]
        prior = p.get(f"prior/{model}/{task}")
        if prior is None and priors is not None:
            by_task = priors.get(model, {})
            prior = by_task.get(task, by_task.get(ANY_TASK))
        if prior is None:
            prior = p.get(f"prior/{model}/{ANY_TASK}", s / n)
        posterior = (PSEUDO_COUNT * prior + s) / (PSEUDO_COUNT + n)
        offset = max(-MAX_OFFSET, min(MAX_OFFSET, _logit(posterior) - _logit(prior)))
        p[f"adj/{model}/{task}"] = round(offset, 6)
    return out
