"""Budget arithmetic over TeamBudget status. Pure.

Exactly-once counting (DESIGN §6): sidecars deliver usage batches at least
once; a batch is identified by (pod, boot_id, sequence), sequences increase
within a boot, and the highest sequence counted per boot is kept in
``status.sequences`` next to the spend, so spend and dedupe state change in
the same status write. Whatever replica or operator restart sees a batch again
finds its sequence already counted and only acknowledges it.

Bound on ``status.sequences``: one entry per live sidecar boot. A new boot of
a pod drops the older boots of that pod (the old process is gone and can no
longer resend), and when more than ``MAX_SEQUENCE_ENTRIES`` remain, entries of
pods that no longer exist are dropped (the caller supplies the live pods).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from switchman_protocol.v1 import budget_pb2, usage_pb2

from ..api.teambudget import ModelSpend, TeamBudgetSpec, TeamBudgetStatus
from ..money import to_micros, to_usd

__all__ = [
    "CONDITIONS",
    "MAX_SEQUENCE_ENTRIES",
    "Charge",
    "apply_charges",
    "budget_state",
    "counted_by_pod",
    "period_start",
    "sequence_key",
    "split_sequence_key",
]

#: Above this many boots in status.sequences, entries of deleted pods are pruned.
MAX_SEQUENCE_ENTRIES = 256

CONDITIONS = {
    "Ok": budget_pb2.BUDGET_CONDITION_OK,
    "SoftLimited": budget_pb2.BUDGET_CONDITION_SOFT_LIMITED,
    "Exhausted": budget_pb2.BUDGET_CONDITION_EXHAUSTED,
}
_ACTIONS = {
    "alert": budget_pb2.BUDGET_ACTION_ALERT,
    "downgrade": budget_pb2.BUDGET_ACTION_DOWNGRADE,
    "block": budget_pb2.BUDGET_ACTION_BLOCK,
}


@dataclass(frozen=True, slots=True)
class Charge:
    """One usage batch from one sidecar boot, already checked against the pod's team."""

    pod: str
    boot_id: str
    sequence: int
    records: Sequence[usage_pb2.UsageRecord]

    @property
    def key(self) -> str:
        return sequence_key(self.pod, self.boot_id)


def sequence_key(pod: str, boot_id: str) -> str:
    return f"{pod}/{boot_id}"


def split_sequence_key(key: str) -> tuple[str, str]:
    """``sequence_key``'s inverse: (pod, boot id)."""
    pod, _, boot = key.rpartition("/")
    return pod, boot


def period_start(period: str, now: dt.datetime) -> dt.datetime:
    """Start (UTC) of the budget period containing ``now``: day, ISO week (Monday) or month."""
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_charges(
    status: TeamBudgetStatus,
    spec: TeamBudgetSpec,
    charges: Sequence[Charge],
    now: dt.datetime,
    live_pods: Collection[str] | None = None,
) -> tuple[TeamBudgetStatus, list[bool]]:
    """New status after counting ``charges`` (in order); per charge, whether it was new.

    Also rolls the period over and recomputes the derived fields, so calling it
    with no charges is how a status is brought up to date.
    """
    # Shallow: the nested maps are rebuilt below and their entries replaced, never mutated.
    out = status.model_copy()
    start = _iso(period_start(spec.period, now))
    if out.period_start != start:
        out.period_start = start
        out.spent_micros = 0
        out.tokens_in = out.tokens_out = out.requests = 0
        out.by_model = {}
    spent = out.spent_micros or 0
    tokens_in, tokens_out, requests = out.tokens_in or 0, out.tokens_out or 0, out.requests or 0
    by_model = dict(out.by_model or {})
    sequences = dict(out.sequences or {})
    counted: list[bool] = []
    for charge in charges:
        key = charge.key
        if charge.sequence <= sequences.get(key, 0):
            counted.append(False)
            continue
        if key not in sequences:
            # A new boot of this pod: earlier boots of it are dead and cannot resend.
            prefix = f"{charge.pod}/"
            for old in [k for k in sequences if k.startswith(prefix)]:
                del sequences[old]
        sequences[key] = charge.sequence
        counted.append(True)
        for r in charge.records:
            micros = to_micros(r.cost)
            spent += micros
            tokens_in += r.input_tokens
            tokens_out += r.output_tokens
            requests += 1
            m = by_model.get(r.model) or ModelSpend()
            m_micros = m.spent_micros + micros
            by_model[r.model] = ModelSpend(
                spent=to_usd(m_micros),
                spent_micros=m_micros,
                tokens_in=m.tokens_in + r.input_tokens,
                tokens_out=m.tokens_out + r.output_tokens,
                requests=m.requests + 1,
            )
    if len(sequences) > MAX_SEQUENCE_ENTRIES and live_pods is not None:
        live = set(live_pods)
        sequences = {k: v for k, v in sequences.items() if split_sequence_key(k)[0] in live}
    limit_micros = to_micros(spec.limit)
    percent = 100.0 * spent / limit_micros
    out.spent_micros = spent
    out.spent = to_usd(spent)
    out.remaining = to_usd(max(0, limit_micros - spent))
    out.percent_used = round(percent, 2)
    out.percent_used_text = f"{percent:.1f}%"
    out.tokens_in, out.tokens_out, out.requests = tokens_in, tokens_out, requests
    out.by_model = by_model
    out.sequences = sequences
    tokens_exhausted = spec.token_limit is not None and tokens_in + tokens_out >= spec.token_limit
    if spent >= limit_micros or tokens_exhausted:
        out.state = "Exhausted"
    elif percent >= spec.soft_limit_percent:
        out.state = "SoftLimited"
    else:
        out.state = "Ok"
    return out, counted


def counted_by_pod(status: TeamBudgetStatus) -> dict[str, dict[str, int]]:
    """``status.sequences`` regrouped: pod -> {boot id: highest sequence counted}."""
    out: dict[str, dict[str, int]] = {}
    for key, seq in (status.sequences or {}).items():
        pod, boot = split_sequence_key(key)
        out.setdefault(pod, {})[boot] = seq
    return out


def budget_state(
    namespace: str,
    spec: TeamBudgetSpec,
    status: TeamBudgetStatus,
    sidecars: int,
    counted: dict[str, int] | None = None,
) -> budget_pb2.BudgetState:
    """The BudgetState pushed to the team's sidecars.

    ``allowance`` is an equal slice of what remains for each of the team's
    ``sidecars`` connected to this replica: between two pushes a sidecar may
    reserve at most its slice, which bounds overspend past the hard limit.
    ``counted`` (this pod's boots -> highest sequence in ``spent``) lets the
    sidecar tell which of its acknowledged batches this state already includes.
    """
    remaining = status.remaining if status.remaining is not None else spec.limit
    rl = spec.rate_limits
    return budget_pb2.BudgetState(
        team=spec.team,
        namespace=namespace,
        condition=CONDITIONS.get(status.state or "Ok", budget_pb2.BUDGET_CONDITION_OK),
        limit=spec.limit,
        spent=status.spent or 0.0,
        remaining=remaining,
        allowance=remaining / max(1, sidecars),
        soft_threshold_percent=float(spec.soft_limit_percent),
        soft_action=_ACTIONS[spec.soft_action],
        hard_action=_ACTIONS[spec.hard_action],
        downgrade_model=spec.downgrade_model or "",
        period_start=status.period_start or "",
        token_limit=spec.token_limit or 0,
        tokens_used=(status.tokens_in or 0) + (status.tokens_out or 0),
        rpm=(rl.rpm or 0) if rl else 0,
        tpm=(rl.tpm or 0) if rl else 0,
        percent_used=status.percent_used or 0.0,
        counted=counted or {},
        counted_known=counted is not None,
    )
