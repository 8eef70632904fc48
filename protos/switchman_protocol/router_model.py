"""The learned router's optional prototypes, as the model file stores them.

Written by training (operator), read by training's evaluation and by the
sidecar's scorer; the two sides may share code only through this package, so
the one reader of the format lives here.

``params["proto/<c>/f/<feature>"]`` are the non-zero weights of prototype ``c``
(a centroid of training prompts), ``params["proto/<c>/p/<model>"]`` the mean
scores of its prompts, and ``params["prototype_share"]`` how much of the nearest
prototype's mean scores is mixed into each probability.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["PROTO_PREFIX", "SHARE_KEY", "prototypes"]

PROTO_PREFIX = "proto/"
SHARE_KEY = "prototype_share"


def prototypes(
    params: Mapping[str, float], dim: int
) -> tuple[float, list[dict[int, float]], list[dict[str, float]]]:
    """The prototype share, each prototype's feature weights and its mean score per
    model; ``(0.0, [], [])`` when there are none or the share is 0. Raises
    ValueError on a malformed parameter."""
    share = float(params.get(SHARE_KEY, 0.0))
    feats: dict[int, dict[int, float]] = {}
    means: dict[int, dict[str, float]] = {}
    for key, value in params.items():
        if not key.startswith(PROTO_PREFIX):
            continue
        c, kind, rest = [*key[len(PROTO_PREFIX) :].split("/", 2), "", ""][:3]
        if not c.isdigit() or kind not in ("f", "p") or not rest or not math.isfinite(value):
            raise ValueError(f"learned router has a malformed prototype parameter {key!r}")
        if kind == "f":
            if not rest.isdigit() or int(rest) >= dim:
                raise ValueError(f"learned router prototype feature out of range: {key!r}")
            feats.setdefault(int(c), {})[int(rest)] = float(value)
        else:
            means.setdefault(int(c), {})[rest] = float(value)
    k = len(means)
    if set(means) != set(range(k)) or not set(feats) <= set(means):
        raise ValueError("learned router prototypes must be numbered 0..k-1, each with scores")
    if not math.isfinite(share) or not 0.0 <= share <= 1.0:
        raise ValueError(f"learned router prototype_share must be in [0, 1], got {share}")
    if share == 0.0 or k == 0:
        return 0.0, [], []
    return share, [feats.get(c, {}) for c in range(k)], [means[c] for c in range(k)]
