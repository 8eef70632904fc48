"""Choosing among candidate models: strategies, the quality bar, output budgets.

Every chooser works on parallel lists — per candidate a model name, a
predicted quality (a probability of a good answer from the learned router, or
the pool's declared quality) and an expected cost for this request — and
returns positions, best first, so the learned router, the static strategies
and the output-budget planner share one selection rule (and the request path
builds no object per model):

* a quality bar: the cheapest candidate whose quality clears the bar (none
  clears it: the best quality), which is RouteLLM's threshold generalised to
  N priced models;
* a cost weight ``w`` in (0, 1]: maximise ``(1 - w) * quality - w * cost /
  max_cost``; normalising by the most expensive candidate of this request
  makes ``w`` mean the same on any price list;
* neither: the best quality.

``rank_order`` runs compiled (``switchman_native``, native/src/router/selection.rs)
when that package imports and no value is NaN; the Python code below is the
specification and serves the rest (tests/routing/test_learned_native.py).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence

from switchman_sidecar.compiled import native as _native

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "BudgetPlanner",
    "rank_order",
    "strategy_order",
    "weighted_pick",
]

#: Output tokens assumed when nothing better is known (cost estimates only).
DEFAULT_OUTPUT_TOKENS = 256.0
#: Balanced strategy: how much a full normalised cost step weighs against quality.
BALANCED_COST_WEIGHT = 0.3


def rank_order(
    qualities: Sequence[float],
    costs: Sequence[float],
    models: Sequence[str],
    bar: float = 0.0,
    cost_weight: float = 0.0,
) -> list[int]:
    """The selection rule (see the module doc): the positions, best first.
    Ties go to the cheaper, then to the model name."""
    if _native is not None:
        order = _native.rank_order(qualities, costs, models, bar, cost_weight)
        if order is not None:
            return order
    return _rank_order_py(qualities, costs, models, bar, cost_weight)


def _rank_order_py(
    qualities: Sequence[float],
    costs: Sequence[float],
    models: Sequence[str],
    bar: float,
    cost_weight: float,
) -> list[int]:
    """:func:`rank_order` in Python (any input, NaN included)."""
    n = len(qualities)
    if not n:
        return []
    if cost_weight > 0:
        top = max(costs)
        keep = 1.0 - cost_weight
        # utility (1 - w) * q - w * c / top, negated: sorted ascending, best first
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


def strategy_order(
    qualities: Sequence[float],
    costs: Sequence[float],
    latencies: Sequence[float],
    models: Sequence[str],
    strategy: str,
    bar: float,
) -> list[int]:
    """The four static strategies (cost, quality, balanced, latency) among the
    candidates that clear the bar, the rest after by quality: the positions, best first."""
    n = len(qualities)
    clearing = [i for i in range(n) if qualities[i] >= bar]
    if strategy == "quality" or not clearing:  # nothing clears the bar: the best there is
        return sorted(range(n), key=lambda i: (-qualities[i], costs[i], models[i]))
    others = [i for i in range(n) if not qualities[i] >= bar]  # the rest, NaN included
    if strategy == "cost":
        keyed = [(costs[i], -qualities[i], models[i], i) for i in clearing]
    elif strategy == "latency":
        keyed = [(latencies[i], costs[i], models[i], i) for i in clearing]
    else:  # balanced
        top = max([costs[i] for i in clearing])
        scale = BALANCED_COST_WEIGHT / top if top > 0 else 0.0
        keep = 1.0 - BALANCED_COST_WEIGHT
        keyed = [(costs[i] * scale - keep * qualities[i], costs[i], models[i], i) for i in clearing]
    keyed.sort(key=lambda k: k[:3])
    head = [k[3] for k in keyed]
    if not others:
        return head
    return head + sorted(others, key=lambda i: (-qualities[i], costs[i]))


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


#: Layouts a BudgetPlanner keeps (one per client cap and candidate list seen).
MAX_LAYOUTS = 256


class BudgetPlanner:
    """Expand each candidate into (model, max-output budget) pairs (R2-Router).

    Output lengths are modelled as exponential with the model's mean output
    length ``L``: a budget ``b`` lets the answer finish with probability
    ``1 - exp(-b / L)`` (a truncated answer counts as a bad one), and the
    expected output tokens billed are ``L * (1 - exp(-b / L))``. So a strong
    model on a tight budget competes with a weak one on a loose budget, and
    the selection rule picks the pair. ``cap`` (the client's own limit)
    bounds every budget. A candidate's ``cost`` assumes a full answer of ``L``
    tokens; a pair's cost replaces that with the billed tokens.

    One planner per route table: what depends only on the table, the client's
    cap and the candidates is computed once per such layout; per request only
    the products and sums that involve this prompt's qualities and costs remain
    (tests/routing/test_strategies.py compares it float for float with the
    per-request definition).
    """

    def __init__(
        self, mean_output: dict[str, float], out_price: dict[str, float], choices: Sequence[int]
    ) -> None:
        self._mean_output = dict(mean_output)
        self._out_price = dict(out_price)
        self._choices = tuple(choices)
        self._layouts: dict[
            tuple[int | None, tuple[str, ...]],
            tuple[list[str], list[int], list[float], list[list[float]], list[list[float]]] | None,
        ] = {}

    def plan(
        self,
        models: Sequence[str],
        qualities: Sequence[float],
        costs: Sequence[float],
        cap: int | None,
    ) -> tuple[list[str], list[float], list[float], list[int]] | None:
        """Parallel lists (model, quality, cost, budget per pair, every budget of a
        model in a row), or None when no budget applies."""
        key = (cap, tuple(models))
        if key in self._layouts:
            layout = self._layouts[key]
        else:
            layout = self._layout(models, cap)
            if len(self._layouts) < MAX_LAYOUTS:  # caps are client input: bound the cache
                self._layouts[key] = layout
        if layout is None:
            return None
        out_models, out_budgets, full, fits_rows, billed_rows = layout
        bases = [cost - lp for cost, lp in zip(costs, full, strict=True)]
        return (
            list(out_models),
            [q * fits for q, row in zip(qualities, fits_rows, strict=True) for fits in row],
            [base + bp for base, row in zip(bases, billed_rows, strict=True) for bp in row],
            list(out_budgets),
        )

    def _layout(
        self, models: Sequence[str], cap: int | None
    ) -> tuple[list[str], list[int], list[float], list[list[float]], list[list[float]]] | None:
        """Per model: its full answer's output cost, P(fits) and billed output cost per budget."""
        budgets = tuple(sorted({min(b, cap) if cap else b for b in self._choices if b > 0}))
        if not budgets:
            return None
        out_models: list[str] = []
        full: list[float] = []
        fits_rows: list[list[float]] = []
        billed_rows: list[list[float]] = []
        for model in models:
            length = max(1.0, self._mean_output.get(model, DEFAULT_OUTPUT_TOKENS))
            price = self._out_price.get(model, 0.0) / 1e6
            curve = _budget_curve(length, budgets)
            out_models += [model] * len(curve)
            full.append(length * price)
            fits_rows.append([fits for _, fits, _ in curve])
            billed_rows.append([billed * price for _, _, billed in curve])
        return out_models, list(budgets) * len(models), full, fits_rows, billed_rows


@functools.lru_cache(maxsize=1024)
def _budget_curve(length: float, budgets: tuple[int, ...]) -> tuple[tuple[int, float, float], ...]:
    """(budget, P(answer fits), expected billed tokens) per budget; cached per table's lengths."""
    out = []
    for b in budgets:
        fits = 1.0 - math.exp(-b / length)
        out.append((b, fits, length * fits))
    return tuple(out)
