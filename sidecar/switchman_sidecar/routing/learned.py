"""The learned router's scorer: per-model success probabilities for one prompt.

The model is a logistic head per candidate over the shared hashed prompt
features (``switchman_protocol.featurize``), trained offline by ``switchman
router train`` and nudged online by the operator from feedback. Scoring is a
sum of ~100 weights per model — a C-level ``itemgetter`` gather plus ``sum``
— so a decision stays in the tens of microseconds without numpy.

Online adjustments arrive as ``params["adj/<model>/<task>"]``: a logit offset
for a model on a task kind (``*`` for every kind), see
``switchman_operator.learning.online``.
"""

from __future__ import annotations

import math
from operator import itemgetter

from switchman_protocol import featurize
from switchman_protocol.v1 import routes_pb2

__all__ = ["LearnedScorer", "adjustments", "sigmoid"]

ADJ_PREFIX = "adj/"


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def adjustments(params: routes_pb2.RouterParams) -> dict[tuple[str, str], float]:
    """(model, task kind) → logit offset learned from outcomes."""
    out: dict[tuple[str, str], float] = {}
    for key, value in params.learned.params.items():
        if key.startswith(ADJ_PREFIX):
            model, _, task = key[len(ADJ_PREFIX) :].rpartition("/")
            if model and task:
                out[(model, task)] = float(value)
    return out


class LearnedScorer:
    """Built once per route table; ``ValueError`` for parameters it cannot use."""

    def __init__(self, params: routes_pb2.RouterParams, models: set[str]) -> None:
        learned = params.learned
        if not featurize.supported(learned.featurizer):
            raise ValueError(
                f"learned router uses featurizer {learned.featurizer!r}; "
                f"this sidecar knows {featurize.FEATURIZER!r}"
            )
        dim = int(learned.feature_dim)
        if dim <= 0 or dim & (dim - 1):
            raise ValueError(f"learned router feature_dim must be a power of two, got {dim}")
        self.dim = dim
        self.heads: list[tuple[str, list[float], float]] = []
        self.mean_output: dict[str, float] = {}
        for head in learned.heads:
            if len(head.weights) != dim:
                raise ValueError(
                    f"learned router head {head.model!r} has {len(head.weights)} weights, "
                    f"expected {dim}"
                )
            if head.model not in models:
                continue  # trained on a model this pod may not use
            self.heads.append((head.model, list(head.weights), float(head.bias)))
            if head.mean_output_tokens > 0:
                self.mean_output[head.model] = float(head.mean_output_tokens)
        if not self.heads:
            raise ValueError("learned router has no head for any model of this route table")
        self.scale = float(learned.params.get("scale", 1.0))
        self.adjust = adjustments(params)
        self.names = [name for name, _, _ in self.heads]
        self.biases = [bias for _, _, bias in self.heads]
        #: Feature index → that feature's weight in every head (row-major for the gather).
        self.rows: list[tuple[float, ...]] = list(
            zip(*(weights for _, weights, _ in self.heads), strict=True)
        )

    @property
    def models(self) -> list[str]:
        return [name for name, _, _ in self.heads]

    def analyze(self, text: str) -> tuple[str, list[int]]:
        return featurize.analyze(text, self.dim)

    def predict(self, indices: list[int], task: str) -> dict[str, float]:
        """Probability of a good answer per model for a featurized prompt."""
        names = self.names
        if len(indices) > 1:
            # One C-level gather of the feature rows, a transpose, and a sum per model:
            # no per-weight work in the interpreter.
            columns = zip(*itemgetter(*indices)(self.rows), strict=True)
            totals: list[float] = [sum(column, 0.0) for column in columns]
        elif indices:
            totals = list(self.rows[indices[0]])
        else:
            totals = [0.0] * len(names)
        norm = self.scale / math.sqrt(len(indices)) if indices else 0.0
        adjust = self.adjust
        out: dict[str, float] = {}
        for name, bias, total in zip(names, self.biases, totals, strict=True):
            logit = bias + norm * total
            if adjust:
                logit += adjust.get((name, task), 0.0) + adjust.get((name, "*"), 0.0)
            out[name] = sigmoid(logit)
        return out
