"""Cost-quality curves: the per-prompt choice swept over the cost weight, and their area.

Shared by evaluation (reporting) and training (choosing the L2 strength on a
validation split by the routing objective itself rather than by log-loss).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_WEIGHTS", "choices", "curve_area", "sweep"]

F = npt.NDArray[np.float64]

#: Cost weights swept; denser near 1, where the cheap end of the curve lives.
DEFAULT_WEIGHTS: tuple[float, ...] = tuple(
    sorted(
        {round(float(w), 6) for w in np.linspace(0.0, 0.9, 91)}
        | {round(float(w), 6) for w in np.linspace(0.9, 1.0, 401)}
    )
)


def _argmax_tiebreak(utility: F, costs: F) -> npt.NDArray[np.int64]:
    best = utility.max(axis=1, keepdims=True)
    masked = np.where(utility >= best - 1e-12, costs, np.inf)
    out: npt.NDArray[np.int64] = np.argmin(masked, axis=1)
    return out


def choices(p: F, costs: F, weights: Sequence[float]) -> npt.NDArray[np.int64]:
    """The model chosen for each prompt (columns) at each cost weight (rows), as the sidecar
    chooses: maximise ``(1 - w) * p - w * cost / max cost``, ties to the cheaper."""
    top = np.maximum(costs.max(axis=1, keepdims=True), 1e-12)
    norm = costs / top
    out = np.empty((len(weights), p.shape[0]), dtype=np.int64)
    for i, w in enumerate(weights):
        out[i] = _argmax_tiebreak((1.0 - w) * p - w * norm, costs)
    return out


def sweep(p: F, costs: F, scores: F, weights: Sequence[float]) -> list[tuple[float, float]]:
    """(mean cost, mean score) per cost weight, the per-prompt choice as in the sidecar."""
    rows = np.arange(p.shape[0])
    return [
        (float(costs[rows, choice].mean()), float(scores[rows, choice].mean()))
        for choice in choices(p, costs, weights)
    ]


def curve_area(points: Sequence[tuple[float, float]], low: float, high: float) -> float:
    """Mean best-reachable quality over costs in [low, high] (a step curve; 0 below it)."""
    if high <= low:
        return max((q for c, q in points if c <= high), default=0.0)
    grid = np.linspace(low, high, 200)
    pts = sorted(points)
    best = 0.0
    out = []
    i = 0
    for c in grid:
        while i < len(pts) and pts[i][0] <= c:
            best = max(best, pts[i][1])
            i += 1
        out.append(best)
    return float(np.mean(out))
