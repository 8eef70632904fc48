"""Router evaluation: the cost-quality curve against baselines, on held-out data.

Every router is swept over the same knob the route table exposes — the cost
weight ``w`` (per prompt: maximise ``(1 - w) * p - w * cost / max_cost``) —
giving a curve of (mean cost per request, mean score). Reported per router:
the curve, and the cost needed to reach 95% and 100% of the strongest single
model's quality (None when the curve never gets there).

Baselines:
* always-strongest / always-cheapest: one point each;
* random at matched cost: the best random mixture of single models at each
  cost (the upper convex hull of the single-model points) — any router that
  sends a random share of traffic to each model lies on or below it;
* nearest-neighbour: the k most similar training prompts (cosine over the
  same features) vote each model's success, then the same knob is swept.
  Without a training set it uses leave-one-out on the evaluation data, which
  favours it.

One held-out split is one draw: a difference of a few prompts at one target
can go either way on another sample of the same data. ``bootstrap`` resamples
the evaluation prompts (with replacement, the same resample for the router
and every baseline, the models' choices kept) and reports, per baseline, the
share of resamples in which the router is strictly better at each target, at
both, and (for the curves) in area. About 0.5 means the data cannot tell the
two apart; near 1 means the router is better whichever sample is drawn.

``cross_validate`` does the same over all of a dataset: a router per fold,
trained on the other folds, predicts the fold it never saw, and the curves
pool every prompt.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from switchman_protocol.v1 import routes_pb2

from .curves import DEFAULT_WEIGHTS, choices, curve_area
from .dataset import Example
from .train import TrainSettings, predict, sparse_rows, train

__all__ = [
    "EvalSettings",
    "bootstrap",
    "cross_validate",
    "evaluate",
    "fold_ids",
    "hull_cost_at",
    "knn_predict",
]

F = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EvalSettings:
    knn_k: int = 10
    weights: tuple[float, ...] = DEFAULT_WEIGHTS
    targets: tuple[float, ...] = (0.95, 1.0)
    bootstrap: int = 0
    """Resamples of the evaluation prompts for ``bootstrap`` in the result (0: none;
    ``switchman router eval`` asks for 1,000 unless told otherwise)."""
    bootstrap_seed: int = 0


def cost_at(points: Sequence[tuple[float, float]], quality: float) -> float | None:
    reach = [c for c, q in points if q >= quality - 1e-12]
    return min(reach) if reach else None


def _hull(singles: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Upper-left convex frontier of single-model (cost, quality) points."""
    pts = sorted(set(singles))
    frontier: list[tuple[float, float]] = []
    for c, q in pts:
        if frontier and q <= frontier[-1][1]:
            continue
        while len(frontier) >= 2:
            (c1, q1), (c2, q2) = frontier[-2], frontier[-1]
            if (q2 - q1) * (c - c1) <= (q - q1) * (c2 - c1):
                frontier.pop()
            else:
                break
        frontier.append((c, q))
    return frontier


def hull_cost_at(singles: Sequence[tuple[float, float]], quality: float) -> float | None:
    """Cheapest random mixture of single models reaching ``quality``."""
    frontier = _hull(singles)
    for (c1, q1), (c2, q2) in itertools.pairwise(frontier):
        if q1 >= quality:
            return c1
        if q2 >= quality:
            return c1 + (c2 - c1) * (quality - q1) / (q2 - q1)
    if frontier and frontier[-1][1] >= quality - 1e-12:
        return frontier[-1][0]
    return None


def knn_predict(
    train_prompts: Sequence[str],
    train_scores: F,
    prompts: Sequence[str],
    dim: int,
    k: int,
    leave_one_out: bool = False,
) -> F:
    def dense(texts: Sequence[str]) -> F:
        x = sparse_rows(texts, dim)
        out = np.zeros((x.n, dim))
        out[x.rows, x.indices] = x.values  # rows are unit-norm already
        return out

    a = dense(prompts)
    b = a if leave_one_out else dense(train_prompts)
    preds = np.zeros((len(prompts), train_scores.shape[1]))
    for start in range(0, len(prompts), 512):
        sim = a[start : start + 512] @ b.T
        if leave_one_out:
            idx = np.arange(start, min(start + 512, len(prompts)))
            sim[idx - start, idx] = -np.inf
        top = np.argpartition(-sim, k, axis=1)[:, :k]
        preds[start : start + 512] = train_scores[top].mean(axis=1)
    return preds


def _summary(
    points: Sequence[tuple[float, float]],
    strong_q: float,
    targets: Sequence[float],
    curve: bool = True,
    span: tuple[float, float] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if span is not None:
        out["area"] = round(curve_area(points, *span), 4)
    for t in targets:
        c = cost_at(points, t * strong_q)
        out[f"cost_at_{round(t * 100)}pct"] = None if c is None else round(c, 8)
    out["best_quality"] = round(max(q for _, q in points), 4)
    if curve:
        pareto = sorted(set(points))
        out["curve"] = [[round(c, 8), round(q, 4)] for c, q in pareto]
    return out


def evaluate(
    params: routes_pb2.RouterParams,
    examples: Sequence[Example],
    train_examples: Sequence[Example] | None = None,
    settings: EvalSettings | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    s = settings or EvalSettings()
    head_models, p = predict(params, [e.prompt for e in examples])
    models = [m for m in head_models if m in examples[0].scores]
    p = p[:, [head_models.index(m) for m in models]]
    knn = _knn(examples, train_examples, models, int(params.learned.feature_dim), s)
    return _result(models, p, knn, examples, s)


def _knn(
    examples: Sequence[Example],
    train_examples: Sequence[Example] | None,
    models: Sequence[str],
    dim: int,
    s: EvalSettings,
) -> F:
    prompts = [e.prompt for e in examples]
    if train_examples:
        scores = np.array([[e.scores[m] for m in models] for e in train_examples])
        return knn_predict([e.prompt for e in train_examples], scores, prompts, dim, s.knn_k)
    scores = np.array([[e.scores[m] for m in models] for e in examples])
    return knn_predict([], scores, prompts, dim, s.knn_k, True)


def _result(
    models: Sequence[str], p: F, knn: F, examples: Sequence[Example], s: EvalSettings
) -> dict[str, Any]:
    """The eval document from the router's and nearest-neighbour's predictions
    (a row per prompt, a column per model of ``models``)."""
    scores = np.array([[e.scores[m] for m in models] for e in examples])
    costs = np.array([[e.costs[m] for m in models] for e in examples])
    singles = {
        m: (float(costs[:, j].mean()), float(scores[:, j].mean())) for j, m in enumerate(models)
    }
    strongest = max(models, key=lambda m: (singles[m][1], -singles[m][0]))
    cheapest = min(models, key=lambda m: (singles[m][0], -singles[m][1]))
    strong_q = singles[strongest][1]
    router_choice = choices(p, costs, s.weights)
    router_pts = _points(router_choice, costs, scores, np.arange(len(examples)))
    # Areas are the mean reachable quality between the cheapest and the strongest model's cost.
    span = (singles[cheapest][0], singles[strongest][0])
    knn_choice = choices(knn, costs, s.weights)
    knn_pts = _points(knn_choice, costs, scores, np.arange(len(examples)))
    hull_pts = list(singles.values())
    random_summary: dict[str, Any] = {}
    for t in s.targets:
        c = hull_cost_at(hull_pts, t * strong_q)
        random_summary[f"cost_at_{round(t * 100)}pct"] = None if c is None else round(c, 8)
    frontier = _hull(hull_pts)
    random_summary["curve"] = [[round(c, 8), round(q, 4)] for c, q in frontier]
    grid = np.linspace(*span, 200)
    reach = np.interp(grid, [c for c, _ in frontier], [q for _, q in frontier], left=0.0)
    random_summary["area"] = round(float(reach.mean()), 4)
    oracle_q = float(scores.max(axis=1).mean())
    result: dict[str, Any] = {
        "examples": len(examples),
        "models": {
            m: {"cost": round(c, 8), "quality": round(q, 4)} for m, (c, q) in singles.items()
        },
        "strongest": strongest,
        "strongest_quality": round(strong_q, 4),
        "strongest_cost": round(singles[strongest][0], 8),
        "oracle_quality": round(oracle_q, 4),
        "router": _summary(router_pts, strong_q, s.targets, span=span),
        "baselines": {
            "always_strongest": _summary([singles[strongest]], strong_q, s.targets, False),
            "always_cheapest": _summary([singles[cheapest]], strong_q, s.targets, False),
            "random_matched_cost": random_summary,
            "nearest_neighbour": _summary(knn_pts, strong_q, s.targets, span=span),
        },
    }
    result["beats_baselines"] = _beats(result)
    if s.bootstrap > 0:
        result["bootstrap"] = bootstrap(router_choice, knn_choice, costs, scores, s)
    return result


def fold_ids(n: int, folds: int, seed: int) -> list[list[int]]:
    """``folds`` disjoint, seeded, near-equal sets of row ids covering ``range(n)``."""
    if folds < 2 or folds > n:
        raise ValueError(f"folds must be between 2 and the number of examples ({n}), not {folds}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [sorted(order[k::folds]) for k in range(folds)]


def _train_fold(args: tuple[Sequence[Example], TrainSettings]) -> bytes:
    return bytes(train(*args).SerializeToString())


def cross_validate(
    examples: Sequence[Example],
    folds: int = 5,
    train_settings: TrainSettings | None = None,
    settings: EvalSettings | None = None,
    seed: int = 0,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """K-fold evaluation: a router trained on each K-1 folds predicts the fold left out.

    Every prompt is predicted once, by a model that never saw it, and the curves and
    the bootstrap run over all of them together: K times the prompts of one held-out
    split, hence a tighter answer, from data that has no separate test set. The
    nearest-neighbour baseline votes from the same training folds. ``per_fold`` gives
    each fold's own targets, to show how much one split moves them."""
    s = settings or EvalSettings()
    ts = train_settings or TrainSettings()
    parts = fold_ids(len(examples), folds, seed)
    held = [set(part) for part in parts]
    tasks = [([e for i, e in enumerate(examples) if i not in out], ts) for out in held]
    blobs: list[bytes] = []
    if jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(min(jobs, folds)) as pool:
            futures = [pool.submit(_train_fold, task) for task in tasks]
            for done, _ in enumerate(concurrent.futures.as_completed(futures), 1):
                if progress:
                    progress(f"{done}/{folds} folds trained")
            blobs = [f.result() for f in futures]
    else:
        for done, task in enumerate(tasks, 1):
            blobs.append(_train_fold(task))
            if progress:
                progress(f"{done}/{folds} folds trained")
    models = sorted(examples[0].scores)
    p = np.zeros((len(examples), len(models)))
    knn = np.zeros_like(p)
    per_fold = []
    for part, blob, (fit, _) in zip(parts, blobs, tasks, strict=True):
        params = routes_pb2.RouterParams.FromString(blob)
        fold = [examples[i] for i in part]
        head_models, fold_p = predict(params, [e.prompt for e in fold])
        missing = set(models) - set(head_models)
        if missing:
            raise ValueError(f"a fold's model has no head for {sorted(missing)}")
        p[part] = fold_p[:, [head_models.index(m) for m in models]]
        knn[part] = _knn(fold, fit, models, int(params.learned.feature_dim), s)
        one = _result(models, p[part], knn[part], fold, replace(s, bootstrap=0))
        per_fold.append(
            {
                "examples": len(fold),
                "router": {k: v for k, v in one["router"].items() if k != "curve"},
                "nearest_neighbour": {
                    k: v for k, v in one["baselines"]["nearest_neighbour"].items() if k != "curve"
                },
                "beats_baselines": one["beats_baselines"],
            }
        )
    result = _result(models, p, knn, examples, s)
    result["folds"] = folds
    result["fold_seed"] = seed
    result["per_fold"] = per_fold
    return result


def _points(
    chosen: npt.NDArray[np.int64], costs: F, scores: F, rows: npt.NDArray[np.int64]
) -> list[tuple[float, float]]:
    """(mean cost, mean score) per cost weight over the prompts ``rows`` (repeats count).

    One 1-D mean per weight, as ``curves.sweep`` and the single models' points are
    summed: a cost weight that picks the cheapest model everywhere then gives exactly
    that model's cost, which the curve's area starts from."""
    return [
        (float(costs[rows, choice[rows]].mean()), float(scores[rows, choice[rows]].mean()))
        for choice in chosen
    ]


def bootstrap(
    router_choice: npt.NDArray[np.int64],
    knn_choice: npt.NDArray[np.int64],
    costs: F,
    scores: F,
    s: EvalSettings,
) -> dict[str, Any]:
    """Per baseline, the share of paired resamples in which the router is strictly better.

    ``router_choice`` and ``knn_choice`` are the models chosen per cost weight (rows) and
    prompt (columns), ``curves.choices``; a resample keeps each prompt's choices."""
    rng = np.random.default_rng(s.bootstrap_seed)
    n, m = costs.shape
    keys = [f"cost_at_{round(t * 100)}pct" for t in s.targets]
    wins: dict[str, dict[str, int]] = {
        name: dict.fromkeys([*keys, "all_targets"], 0)
        for name in ("always_strongest", "always_cheapest", "random_matched_cost")
    }
    wins["nearest_neighbour"] = dict.fromkeys([*keys, "all_targets", "area"], 0)
    for _ in range(s.bootstrap):
        rows = np.asarray(rng.integers(0, n, size=n), dtype=np.int64)
        # Per column, 1-D means: summed as the routers' points are (see ``_points``).
        single_cost = [float(costs[rows, j].mean()) for j in range(m)]
        single_score = [float(scores[rows, j].mean()) for j in range(m)]
        singles = list(zip(single_cost, single_score, strict=True))
        strongest = max(range(m), key=lambda j: (single_score[j], -single_cost[j]))
        cheapest = min(range(m), key=lambda j: (single_cost[j], -single_score[j]))
        strong_q = single_score[strongest]
        ours = _points(router_choice, costs, scores, rows)
        theirs = _points(knn_choice, costs, scores, rows)
        span = (single_cost[cheapest], single_cost[strongest])
        if curve_area(ours, *span) > curve_area(theirs, *span):
            wins["nearest_neighbour"]["area"] += 1
        by_name: dict[str, Any] = {
            "always_strongest": [singles[strongest]],
            "always_cheapest": [singles[cheapest]],
            "nearest_neighbour": theirs,
        }
        for name, tally in wins.items():
            better = []
            for key, t in zip(keys, s.targets, strict=True):
                mine = cost_at(ours, t * strong_q)
                if name == "random_matched_cost":
                    other = hull_cost_at(singles, t * strong_q)
                else:
                    other = cost_at(by_name[name], t * strong_q)
                ok = mine is not None and (other is None or mine < other)
                tally[key] += ok
                better.append(ok)
            tally["all_targets"] += all(better)
    return {
        "resamples": s.bootstrap,
        "seed": s.bootstrap_seed,
        "router_better_share": {
            name: {key: round(count / s.bootstrap, 3) for key, count in tally.items()}
            for name, tally in wins.items()
        },
    }


def _beats(result: dict[str, Any]) -> dict[str, bool]:
    """Per baseline: the router is nowhere worse and somewhere better at the targets.

    Worse: it reaches a target only at a higher cost, or not at all where the baseline
    does. A tie (the same cost, e.g. both at the cheapest model when that model alone
    already reaches 95%: no router can be cheaper) is not a loss, but beating needs one
    target reached cheaper (or reached at all)."""
    router = result["router"]
    out = {}
    for name, base in result["baselines"].items():
        worse = better = False
        for key in ("cost_at_95pct", "cost_at_100pct"):
            ours, theirs = router.get(key), base.get(key)
            if ours is None:
                worse = worse or theirs is not None
            elif theirs is None or ours < theirs:
                better = True
            elif ours > theirs:
                worse = True
        out[name] = better and not worse
    return out
