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

Prototypes (optional): ``params["proto/<c>/f/<feature>"]`` are the non-zero
weights of prototype ``c`` (a centroid of training prompts) and
``params["proto/<c>/p/<model>"]`` the mean scores of its prompts. Their
similarities ride in the same packed gather, one more field each; the
nearest prototype's mean scores are mixed into the heads' probabilities with
the share ``params["prototype_share"]``. Without them nothing changes.

When ``switchman_native`` imports, the scorer also builds its compiled twin
(native/src/router/scorer.rs) and ``analyze``/``predict_list`` run there: the
features stay in Rust (a ``Features`` object, no Python set per request) and
the same integer sums and float operations give the same probabilities, bit
for bit (tests/routing/test_learned_native.py). The Python code below stays
the specification and serves builds without the compiled package.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection, Sequence
from operator import itemgetter

from switchman_protocol import featurize
from switchman_protocol.router_model import prototypes
from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.compiled import native as _native

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
#: Bits per prototype field: up to MAX_FEATURES terms below 2^20 each.
PROTO_BITS = 32
#: A prototype's largest weight becomes 2^PROTO_SCALE_BITS (below the offset).
PROTO_SCALE_BITS = 18
_PROTO_OFFSET = 1 << (PROTO_SCALE_BITS + 1)


class LearnedScorer:
    """Built once per route table; ``ValueError`` for parameters it cannot use.

    ``native=False`` keeps to the Python code even when the compiled one is there
    (what the tests compare it with)."""

    def __init__(
        self, params: routes_pb2.RouterParams, models: set[str], *, native: bool = True
    ) -> None:
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
        share, proto_weights, proto_means = prototypes(learned.params, dim)
        #: Share of the nearest prototype's mean scores in each probability (0: none).
        self.prototype_share = share
        #: Per prototype, its mean score per model (this table's heads), times the share.
        self._votes: list[list[float]] = [
            [share * means.get(name, 0.0) for name in self.names] for means in proto_means
        ]
        self._heads = len(heads)
        #: Feature index → that feature's weight in every head (the float fallback).
        self.rows: list[tuple[float, ...]] = list(zip(*(w for _, w, _ in heads), strict=True))
        # Fixed point: the largest weight becomes 2^(FIELD_BITS - 14), below the offset.
        top = max((abs(w) for row in self.rows for w in row), default=0.0) or 1.0
        self._quantum = top / float(1 << (FIELD_BITS - 14))
        inv = 1.0 / self._quantum
        shifts = [FIELD_BITS * j for j in range(len(heads))]
        packed = [
            sum((round(w * inv) + _OFFSET) << k for w, k in zip(row, shifts, strict=True))
            for row in self.rows
        ]
        # Prototypes: only which one is nearest matters, so their weights are quantised on
        # their own scale into narrower fields above the heads'. The sums are exact
        # integers, computed the same way in training (``learning.train.quantise_prototypes``).
        #: Feature index → that feature's quantised weight in every prototype (fallback).
        self._proto_rows: list[tuple[int, ...]] = [()] * dim
        k = len(proto_weights)
        if k:
            top_p = max((abs(w) for f in proto_weights for w in f.values()), default=0.0) or 1.0
            inv_p = 1.0 / (top_p / float(1 << PROTO_SCALE_BITS))
            quantised = [[0] * dim for _ in range(k)]
            for column, feats in zip(quantised, proto_weights, strict=True):
                for index, weight in feats.items():
                    column[index] = round(weight * inv_p)
            self._proto_rows = list(zip(*quantised, strict=True))
            above = FIELD_BITS * len(heads)
            proto_shifts = [above + PROTO_BITS * c for c in range(k)]
            packed = [
                word
                + sum((q + _PROTO_OFFSET) << sh for q, sh in zip(row, proto_shifts, strict=True))
                for word, row in zip(packed, self._proto_rows, strict=True)
            ]
        self.packed: list[int] = packed
        self._bytes = FIELD_BITS // 8 * len(heads) + PROTO_BITS // 8 * k
        self._unpack = struct.Struct(f"<{len(heads)}Q{k}I").unpack
        self._protos = k
        #: Task kind → per-model bias plus the learned offsets (filled on first use).
        self._bias_by_task: dict[str, list[float]] = {}
        #: Task kind → the non-zero learned offsets (with prototypes; filled on first use).
        self._offsets_by_task: dict[str, list[tuple[int, float]]] = {}
        #: The compiled scorer over the same parameters, when available.
        self._core: _native.LearnedScorer | None = None
        if native and _native is not None:
            self._core = _native.LearnedScorer(
                dim,
                [weights for _, weights, _ in heads],
                self.biases,
                self.names,
                self._quantum,
                self.scale,
                list(self.adjust.items()),
                share,
                self._votes,
                self._proto_rows if k else [],
            )

    @property
    def native(self) -> bool:
        """Whether the compiled scorer serves ``analyze`` and ``predict_list``."""
        return self._core is not None

    @property
    def models(self) -> list[str]:
        return list(self.names)

    def analyze(self, text: str) -> tuple[str, Collection[int]]:
        """The task kind and the prompt's feature indices (unordered)."""
        if self._core is not None:
            return self._core.analyze(text)
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

    def _sums(self, indices: Collection[int]) -> tuple[list[float], Sequence[int]]:
        """Per head, the sum of the prompt's feature weights; per prototype (none
        without them), its sum of quantised weights plus a constant shared by all of
        them (which orders them as their sums do)."""
        n = len(indices)
        h = self._heads
        if n > 1 and n <= MAX_FEATURES:
            packed = sum(itemgetter(*indices)(self.packed))
            base = n * _OFFSET
            q = self._quantum
            # The fields, as unsigned little-endian words, in one C call.
            fields = self._unpack(packed.to_bytes(self._bytes, "little"))
            return [(field - base) * q for field in fields[:h]], fields[h:]
        if n > 1:
            picked = itemgetter(*indices)
            totals = [sum(column, 0.0) for column in zip(*picked(self.rows), strict=True)]
            return totals, [sum(column) for column in zip(*picked(self._proto_rows), strict=True)]
        if n == 1:
            index = next(iter(indices))
            return list(self.rows[index]), self._proto_rows[index]
        return [0.0] * h, (0,) * self._protos

    def totals(self, indices: Collection[int]) -> list[float]:
        """Per model, the sum of the prompt's feature weights."""
        return self._sums(indices)[0]

    def nearest_prototype(self, indices: Collection[int]) -> int | None:
        """The prototype most similar to a featurized prompt (the first on ties), if any."""
        if not self._protos:
            return None
        sims = self._sums(indices)[1]
        return sims.index(max(sims))

    def predict(self, indices: Collection[int], task: str) -> dict[str, float]:
        """Probability of a good answer per model for a featurized prompt."""
        return dict(zip(self.names, self.predict_list(indices, task), strict=True))

    def predict_list(self, indices: Collection[int], task: str) -> list[float]:
        """:meth:`predict` as a list in the order of ``names`` (what the router reads).

        ``sigmoid`` is written out in the comprehensions (the same two branches, so the
        same floats): a Python call per model costs more than the arithmetic.
        """
        if self._core is not None:
            return self._core.predict_list(indices, task)
        n = len(indices)
        norm = self.scale / math.sqrt(n) if n else 0.0
        exp = math.exp
        if not self._protos:
            if 1 < n <= MAX_FEATURES:
                # The usual case, fused: one packed sum, the fields read in place.
                fields = self._unpack(
                    sum(itemgetter(*indices)(self.packed)).to_bytes(self._bytes, "little")
                )
                base = n * _OFFSET
                q = self._quantum
                xs = [
                    bias + norm * ((field - base) * q)
                    for bias, field in zip(self._biases(task), fields, strict=True)
                ]
            else:
                xs = [
                    bias + norm * total
                    for bias, total in zip(self._biases(task), self.totals(indices), strict=True)
                ]
            return [1.0 / (1.0 + exp(-x)) if x >= 0 else (e := exp(x)) / (1.0 + e) for x in xs]
        keep = 1.0 - self.prototype_share
        if 1 < n <= MAX_FEATURES:
            # The usual case, fused: one packed sum, the heads' fields read in place.
            fields = self._unpack(
                sum(itemgetter(*indices)(self.packed)).to_bytes(self._bytes, "little")
            )
            near = fields[self._heads :]
            vote = self._votes[near.index(max(near))]
            base = n * _OFFSET
            step = norm * self._quantum
            # ``fields`` holds the prototypes' fields after the heads': zip stops at the heads.
            xs = [
                bias + step * (field - base)
                for bias, field in zip(self.biases, fields, strict=False)
            ]
        else:
            totals, sims = self._sums(indices)
            vote = self._votes[sims.index(max(sims))]
            xs = [bias + norm * total for bias, total in zip(self.biases, totals, strict=True)]
        probs = [
            keep * (1.0 / (1.0 + exp(-x)) if x >= 0 else (e := exp(x)) / (1.0 + e)) + mean
            for x, mean in zip(xs, vote, strict=True)
        ]
        offsets = self._offsets(task)
        if offsets:
            # Online offsets move the mixed probability in logit space, so outcomes can
            # still take a model's traffic away entirely (the prototype vote is fixed).
            for j, offset in offsets:
                p = min(max(probs[j], 1e-12), 1.0 - 1e-12)
                probs[j] = sigmoid(math.log(p / (1.0 - p)) + offset)
        return probs

    def _offsets(self, task: str) -> list[tuple[int, float]]:
        """The non-zero online offsets for a task kind: (position in ``names``, offset)."""
        offsets = self._offsets_by_task.get(task)
        if offsets is None:
            adjust = self.adjust
            offsets = [
                (j, adjust.get((name, task), 0.0) + adjust.get((name, "*"), 0.0))
                for j, name in enumerate(self.names)
            ]
            offsets = [(j, offset) for j, offset in offsets if offset]
            if len(self._offsets_by_task) < 64:
                self._offsets_by_task[task] = offsets
        return offsets
