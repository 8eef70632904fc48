"""Choosing among candidate models: strategies, the quality bar, output budgets.

Every chooser works on ``Option``s — a model with a predicted quality (a
probability of a good answer from the learned router, or the pool's declared
quality) and an expected cost for this request — so the learned router, the
static strategies and the output-budget planner share one selection rule:

* a quality bar: the cheapest option whose quality clears the bar (none
  clears it: the best quality), which is RouteLLM's threshold generalised to
  N priced models;
* a cost weight ``w`` in (0, 1]: maximise ``(1 - w) * quality - w * cost /
  max_cost``; normalising by the most expensive option of this request makes
  ``w`` mean the same on any price list;
* neither: the best quality.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence
from typing import NamedTuple

from switchman_protocol.v1 import routes_pb2

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "Option",
    "choose",
    "cost_of",
    "expected_cost",
    "plan_budgets",
    "rank",
    "rank_order",
    "strategy_rank",
    "weighted_pick",
]

#: Output tokens assumed when nothing better is known (cost estimates only).
DEFAULT_OUTPUT_TOKENS = 256.0
#: Balanced strategy: how much a full normalised cost step weighs against quality.
BALANCED_COST_WEIGHT = 0.3
#: Quality within this of the best counts as a tie for the quality strategy.
QUALITY_TIE = 1e-9


class Option(NamedTuple):
    """A NamedTuple, not a dataclass: ~9 are made per decision on the hot path."""

    model: str
    quality: float
    cost: float
    """Expected USD for this request."""
    latency_ms: float = 0.0
    budget: int | None = None
    """Max output tokens this option implies (output-budget planning)."""


def expected_cost(model: routes_pb2.Model, input_tokens: int, output_tokens: float) -> float:
    price = model.price
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6


def cost_of(in_price: float, out_price: float, input_tokens: int, output_tokens: float) -> float:
    """USD for a request, prices in USD per million tokens."""
    return (input_tokens * in_price + output_tokens * out_price) / 1e6


def _utility(option: Option, max_cost: float, cost_weight: float) -> float:
    norm = option.cost / max_cost if max_cost > 0 else 0.0
    return (1.0 - cost_weight) * option.quality - cost_weight * norm


def rank(options: Sequence[Option], bar: float = 0.0, cost_weight: float = 0.0) -> list[Option]:
    """Options best first under the selection rule (see the module docstring)."""
    order = rank_order(
        [o.quality for o in options],
        [o.cost for o in options],
        [o.model for o in options],
        bar,
        cost_weight,
    )
    return [options[i] for i in order]


def rank_order(
    qualities: Sequence[float],
    costs: Sequence[float],
    models: Sequence[str],
    bar: float = 0.0,
    cost_weight: float = 0.0,
) -> list[int]:
    """:func:`rank` on parallel lists: the positions, best first (what the request path uses)."""
    n = len(qualities)
    if not n:
        return []
    if cost_weight > 0:
        top = max(costs)
        keep = 1.0 - cost_weight
        # _utility inlined (this runs per request): the same arithmetic, the same order.
        if top > 0:
            keys = [
                cost_weight * (c / top) - keep * q for q, c in zip(qualities, costs, strict=True)
            ]
        else:
            keys = [-keep * q for q in qualities]
        return [k[3] for k in sorted(zip(keys, costs, models, range(n), strict=True))]
    if bar > 0:
        clear = sorted(
            (i for i in range(n) if qualities[i] >= bar), key=lambda i: (costs[i], models[i])
        )
        rest = sorted(
            (i for i in range(n) if qualities[i] < bar),
            key=lambda i: (-qualities[i], costs[i], models[i]),
        )
        return clear + rest
    return sorted(range(n), key=lambda i: (-qualities[i], costs[i], models[i]))


def choose(options: Sequence[Option], bar: float = 0.0, cost_weight: float = 0.0) -> Option | None:
    ranked = rank(options, bar, cost_weight)
    return ranked[0] if ranked else None


def strategy_rank(options: Sequence[Option], strategy: str, bar: float) -> list[Option]:
    """The four static strategies over options."""
    clearing = [o for o in options if o.quality >= bar]
    if strategy == "quality" or not clearing:  # nothing clears the bar: the best there is
        return sorted(options, key=lambda o: (-o.quality, o.cost, o.model))
    others = [o for o in options if not o.quality >= bar]  # the rest, NaN included
    if strategy == "cost":
        keyed = [(o.cost, -o.quality, o.model, o) for o in clearing]
    elif strategy == "latency":
        keyed = [(o.latency_ms, o.cost, o.model, o) for o in clearing]
    else:  # balanced
        top = max(o.cost for o in clearing)
        scale = BALANCED_COST_WEIGHT / top if top > 0 else 0.0
        keep = 1.0 - BALANCED_COST_WEIGHT
        keyed = [(o.cost * scale - keep * o.quality, o.cost, o.model, o) for o in clearing]
    keyed.sort(key=lambda k: k[:3])
    head = [k[3] for k in keyed]
    if not others:
        return head
    return head + sorted(others, key=lambda o: (-o.quality, o.cost))


def weighted_pick(names: Sequence[str], weights: Sequence[int], rng: random.Random) -> list[str]:
    """A weighted split: one name drawn by weight first, the others after (as fallbacks)."""
    total = sum(weights)
    if not names:
        return []
    if total <= 0:
        return list(names)
    x = rng.random() * total
    acc = 0.0
    chosen = names[-1]
    for name, w in zip(names, weights, strict=True):
        acc += w
        if x < acc:
            chosen = name
            break
    return [chosen, *[n for n in names if n != chosen]]


def plan_budgets(
    options: Sequence[Option],
    mean_output: dict[str, float],
    out_price: dict[str, float],
    choices: Sequence[int],
    cap: int | None,
) -> list[Option]:
    """Expand each model option into (model, max-output budget) options (R2-Router).

    Output lengths are modelled as exponential with the model's mean output
    length ``L``: a budget ``b`` lets the answer finish with probability
    ``1 - exp(-b / L)`` (a truncated answer counts as a bad one), and the
    expected output tokens billed are ``L * (1 - exp(-b / L))``. So a strong
    model on a tight budget competes with a weak one on a loose budget, and
    the selection rule picks the pair. ``cap`` (the client's own limit)
    bounds every budget.
    """
    budgets = tuple(sorted({min(b, cap) if cap else b for b in choices if b > 0}))
    if not budgets:
        return list(options)
    out: list[Option] = []
    for model, quality, cost, latency, _ in options:
        length = max(1.0, mean_output.get(model, DEFAULT_OUTPUT_TOKENS))
        price = out_price.get(model, 0.0) / 1e6
        base = cost - length * price  # ``cost`` assumed a full answer of ``length`` tokens
        for b, fits, billed in _budget_curve(length, budgets):
            out.append(Option(model, quality * fits, base + billed * price, latency, b))
    return out


@functools.lru_cache(maxsize=1024)
def _budget_curve(length: float, budgets: tuple[int, ...]) -> tuple[tuple[int, float, float], ...]:
    """(budget, P(answer fits), expected billed tokens) per budget; cached per table's lengths."""
    out = []
    for b in budgets:
        fits = 1.0 - math.exp(-b / length)
        out.append((b, fits, length * fits))
    return tuple(out)
