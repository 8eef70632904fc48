"""The learned router's scorer: per-model success probabilities for one prompt.

The model is a logistic head per candidate over the shared hashed prompt
features (``switchman_protocol.featurize``), trained offline by ``switchman
router train`` and nudged online by the operator from feedback. Scoring is a
sum of ~100 weights per model, done for all models at once without numpy:
at table load every feature's weights (one per model) are packed, in fixed
point, into one Python integer — model ``j`` in bits ``[64 j, 64 j + 64)``,
each weight offset to be non-negative — so the prompt's score for every
model is *one* C-level ``sum`` of ~100 integers (an ``itemgetter`` gather),
read back field by field. Fields cannot carry into each other (a field
holds up to ``MAX_FEATURES`` offset weights), and integer sums are exact, so
the result does not depend on the order of the features and differs from the
float computation of training only by the quantisation of the weights (2^-50
of the largest weight).

Online adjustments arrive as ``params["adj/<model>/<task>"]``: a logit offset
for a model on a task kind (``*`` for every kind), see
``switchman_operator.learning.online``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection
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


#: Bits per model in a packed feature row.
FIELD_BITS = 64
#: Most features one prompt may have for the packed sum (the featurizer yields
#: at most ~1,800); more fall back to summing floats.
MAX_FEATURES = 1 << 12
#: Every quantised weight is offset by this so a field only ever grows.
_OFFSET = 1 << (FIELD_BITS - 13)


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
        heads: list[tuple[str, list[float], float]] = []
        self.mean_output: dict[str, float] = {}
        for head in learned.heads:
            if len(head.weights) != dim:
                raise ValueError(
                    f"learned router head {head.model!r} has {len(head.weights)} weights, "
                    f"expected {dim}"
                )
            if head.model not in models:
                continue  # trained on a model this pod may not use
            weights = list(head.weights)
            if not all(map(math.isfinite, weights)) or not math.isfinite(head.bias):
                raise ValueError(f"learned router head {head.model!r} has non-finite weights")
            heads.append((head.model, weights, float(head.bias)))
            if head.mean_output_tokens > 0:
                self.mean_output[head.model] = float(head.mean_output_tokens)
        if not heads:
            raise ValueError("learned router has no head for any model of this route table")
        self.scale = float(learned.params.get("scale", 1.0))
        self.adjust = adjustments(params)
        self.names = [name for name, _, _ in heads]
        self.biases = [bias for _, _, bias in heads]
        #: Feature index → that feature's weight in every head (the float fallback).
        self.rows: list[tuple[float, ...]] = list(zip(*(w for _, w, _ in heads), strict=True))
        # Fixed point: the largest weight becomes 2^(FIELD_BITS - 14), below the offset.
        top = max((abs(w) for row in self.rows for w in row), default=0.0) or 1.0
        self._quantum = top / float(1 << (FIELD_BITS - 14))
        inv = 1.0 / self._quantum
        self._shifts = [FIELD_BITS * j for j in range(len(heads))]
        self._bytes = FIELD_BITS // 8 * len(heads)
        self._unpack = struct.Struct(f"<{len(heads)}Q").unpack
        self.packed: list[int] = [
            sum((round(w * inv) + _OFFSET) << k for w, k in zip(row, self._shifts, strict=True))
            for row in self.rows
        ]
        #: Task kind → per-model bias plus the learned offsets (filled on first use).
        self._bias_by_task: dict[str, list[float]] = {}

    @property
    def models(self) -> list[str]:
        return list(self.names)

    def analyze(self, text: str) -> tuple[str, Collection[int]]:
        """The task kind and the prompt's feature indices (unordered)."""
        return featurize.analyze_set(text, self.dim)

    def _biases(self, task: str) -> list[float]:
        biases = self._bias_by_task.get(task)
        if biases is None:
            adjust = self.adjust
            biases = [
                bias + adjust.get((name, task), 0.0) + adjust.get((name, "*"), 0.0)
                for name, bias in zip(self.names, self.biases, strict=True)
            ]
            if len(self._bias_by_task) < 64:  # task kinds are a closed set; bound it anyway
                self._bias_by_task[task] = biases
        return biases

    def totals(self, indices: Collection[int]) -> list[float]:
        """Per model, the sum of the prompt's feature weights."""
        n = len(indices)
        if n > 1 and n <= MAX_FEATURES:
            packed = sum(itemgetter(*indices)(self.packed))
            base = n * _OFFSET
            q = self._quantum
            # The fields, as unsigned 64-bit little-endian words, in one C call.
            fields = self._unpack(packed.to_bytes(self._bytes, "little"))
            return [(field - base) * q for field in fields]
        if n > 1:
            columns = zip(*itemgetter(*indices)(self.rows), strict=True)
            return [sum(column, 0.0) for column in columns]
        if n == 1:
            return list(self.rows[next(iter(indices))])
        return [0.0] * len(self.names)

    def predict(self, indices: Collection[int], task: str) -> dict[str, float]:
        """Probability of a good answer per model for a featurized prompt."""
        n = len(indices)
        norm = self.scale / math.sqrt(n) if n else 0.0
        return {
            name: sigmoid(bias + norm * total)
            for name, bias, total in zip(
                self.names, self._biases(task), self.totals(indices), strict=True
            )
        }
