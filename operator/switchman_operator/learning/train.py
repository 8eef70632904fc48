"""Offline training of the learned router: one logistic head per model.

Each head predicts the probability that its model answers a prompt well, from
the shared hashed features (``switchman_protocol.featurize``), each scaled by
``1/sqrt(#features)`` — exactly what the sidecar's scorer computes. Targets
are the dataset's scores in [0, 1] (soft labels are fine for cross-entropy).

Two refinements cost the sidecar nothing (they only change the weights):

* **Neighbour-smoothed targets** (a kNN prior distilled into the heads): each
  training target is blended with the mean score of its k most similar
  *other* training prompts (cosine over the same features). A single 0/1
  outcome is a noisy label; the neighbours' mean is what a nearest-neighbour
  router would predict, and the linear head learns the blend.
* **Per-model Platt calibration** (optional, ``calibrate``): the heads are
  compared with each other (and with prices), so each model's logits can be
  rescaled, ``a * z + b``, fitted on the validation split's predictions; ``a``
  and ``b`` are folded into the head's weights and bias.

The L2 strength and the blend share are chosen on a validation split carved
out of the training data (by the routing objective, the validation curve's
area), never on the evaluation data, so nothing is tuned to one test set.

The result is a ``RouterParams`` proto; ``dump_model``/``load_model`` turn it
into the JSON text a ConfigMap holds (``RoutingPolicy.router.modelRef``).
"""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from google.protobuf import json_format

from switchman_protocol import featurize
from switchman_protocol.router_model import PROTO_PREFIX, SHARE_KEY
from switchman_protocol.router_model import prototypes as prototypes_of
from switchman_protocol.v1 import routes_pb2

from .curves import DEFAULT_WEIGHTS, curve_area, sweep
from .dataset import Example

__all__ = [
    "CONFIGMAP_LIMIT",
    "MODEL_FORMAT",
    "SparseRows",
    "TrainSettings",
    "dump_model",
    "load_model",
    "model_bytes",
    "model_text",
    "nearest_prototype",
    "neighbour_targets",
    "platt",
    "predict",
    "prototype_means",
    "prototypes",
    "quantise_prototypes",
    "read_model_file",
    "read_prototypes",
    "sparse_rows",
    "train",
]

MODEL_FORMAT = "switchman-router/v1"
F = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TrainSettings:
    dim: int = 4096
    """Hashed feature buckets (a power of two); 4096 keeps the table ~150 KB for 9 models."""
    l2_grid: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3)
    """Candidate L2 strengths; the one whose router does best on the validation split wins."""
    epochs: int = 200
    learning_rate: float = 0.05
    validation_share: float = 0.15
    seed: int = 0
    blend_grid: tuple[float, ...] = (0.0, 0.5)
    """Candidate shares of each target taken from its neighbours' mean score (0 = none);
    chosen on the validation split after the L2 strength."""
    neighbours: int = 10
    prototype_grid: tuple[int, ...] = (16, 32)
    """Candidate numbers of prototypes (0 = none), chosen on the validation split with
    the share below; each costs the sidecar one more 32-bit field in the packed gather."""
    prototype_share_grid: tuple[float, ...] = (0.25, 0.5, 0.75)
    """Candidate shares of the nearest prototype's mean scores in each prediction."""
    prototype_features: int = 64
    """Features kept per prototype (the largest centroid weights, renormalised)."""
    calibrate: bool = False
    """Fit a per-model Platt scaling on the validation split and fold it into the head.
    Off by default: on the LLMRouter splits it helped one and hurt another (docs/routing.md)."""


@dataclass(frozen=True, slots=True)
class SparseRows:
    """Binary features scaled by 1/sqrt(n), in CSR form."""

    indptr: Ints
    indices: Ints
    values: F
    rows: Ints
    """Row id of every non-zero."""
    n: int

    @property
    def starts(self) -> Ints:
        return self.indptr[:-1]


def sparse_rows(prompts: Sequence[str], dim: int) -> SparseRows:
    feats = featurize.featurize(prompts, dim)
    lengths = np.array([len(f) for f in feats], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = np.fromiter((i for f in feats for i in f), dtype=np.int64, count=int(indptr[-1]))
    rows = np.repeat(np.arange(len(feats), dtype=np.int64), lengths)
    values = (1.0 / np.sqrt(np.maximum(lengths, 1)))[rows]
    return SparseRows(indptr, indices, values, rows, len(feats))


def _forward(x: SparseRows, w: F, b: F) -> F:
    gathered = w[x.indices] * x.values[:, None]
    return np.add.reduceat(gathered, x.starts, axis=0) + b


def _sigmoid(z: F) -> F:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _fit(x: SparseRows, y: F, dim: int, l2: float, s: TrainSettings) -> tuple[F, F]:
    """Full-batch Adam on mean cross-entropy + l2/2 * |w|^2."""
    m = y.shape[1]
    w = np.zeros((dim, m))
    mean = np.clip(y.mean(axis=0), 1e-3, 1 - 1e-3)
    b = np.log(mean / (1 - mean))
    # The gradient sums each feature's non-zeros: visit them sorted by feature, with
    # their row ids and values permuted once here rather than on every epoch.
    order = np.argsort(x.indices, kind="stable")
    uniq, seg = np.unique(x.indices[order], return_index=True)
    rows_by_feature = x.rows[order]
    values_by_feature = x.values[order][:, None]
    mw, vw = np.zeros_like(w), np.zeros_like(w)
    mb, vb = np.zeros_like(b), np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, s.epochs + 1):
        g = (_sigmoid(_forward(x, w, b)) - y) / x.n
        contrib = g[rows_by_feature] * values_by_feature
        gw = l2 * w
        gw[uniq] += np.add.reduceat(contrib, seg, axis=0)
        gb = g.sum(axis=0)
        mw = beta1 * mw + (1 - beta1) * gw
        vw = beta2 * vw + (1 - beta2) * gw * gw
        mb = beta1 * mb + (1 - beta1) * gb
        vb = beta2 * vb + (1 - beta2) * gb * gb
        lr = s.learning_rate * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        w -= lr * mw / (np.sqrt(vw) + eps)
        b -= lr * mb / (np.sqrt(vb) + eps)
    return w, b


def _log_loss(p: F, y: F) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


#: Reference prompts for the neighbour targets at most (a seeded sample beyond that):
#: the similarity matrix is computed densely, n x pool.
NEIGHBOUR_POOL = 20_000


def neighbour_targets(x: SparseRows, y: F, dim: int, k: int, seed: int = 0) -> F:
    """Per row, the mean target of its ``k`` most similar other rows (cosine, leave-one-out)."""
    if x.n <= 1:
        return y.copy()
    k = min(k, x.n - 1)
    pool = np.arange(x.n)
    if x.n > NEIGHBOUR_POOL:
        pool = np.sort(np.random.default_rng(seed).choice(x.n, NEIGHBOUR_POOL, replace=False))
    # Dense only for the reference pool and one block of rows at a time: all n rows
    # densely would be n x dim floats (1M prompts at dim 4096: 16 GB).
    ref = np.zeros((len(pool), dim), dtype=np.float32)
    in_pool = np.isin(x.rows, pool)  # rows are unit-norm already
    ref[np.searchsorted(pool, x.rows[in_pool]), x.indices[in_pool]] = x.values[in_pool]
    out = np.empty_like(y)
    for start in range(0, x.n, 512):
        stop = min(start + 512, x.n)
        lo, hi = x.indptr[start], x.indptr[stop]
        block = np.zeros((stop - start, dim), dtype=np.float32)
        block[x.rows[lo:hi] - start, x.indices[lo:hi]] = x.values[lo:hi]
        sim = block @ ref.T
        # Leave each row out of its own neighbours.
        own = np.searchsorted(pool, np.arange(start, stop))
        hit = (own < len(pool)) & (pool[np.minimum(own, len(pool) - 1)] == np.arange(start, stop))
        sim[np.nonzero(hit)[0], own[hit]] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        out[start:stop] = y[pool[top]].mean(axis=1)
    return out


#: Pseudo-counts of the overall mean in each prototype's mean scores (small clusters
#: are pulled towards it).
PROTOTYPE_PRIOR = 5.0
#: Validation-area differences treated as noise when choosing prototypes (about the
#: standard error of a curve's area on a validation split of ~700 prompts).
PROTOTYPE_AREA_SLACK = 0.005


def _take(x: SparseRows, ids: Ints) -> SparseRows:
    """The rows ``ids`` (sorted) of ``x``."""
    lengths = x.indptr[ids + 1] - x.indptr[ids]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    pick = np.repeat(x.indptr[ids] - indptr[:-1], lengths) + np.arange(indptr[-1])
    rows = np.repeat(np.arange(len(ids), dtype=np.int64), lengths)
    return SparseRows(indptr, x.indices[pick], x.values[pick], rows, len(ids))


#: A prototype's largest weight in the sidecar's fixed point (its PROTO_SCALE_BITS).
PROTOTYPE_SCALE_BITS = 18


def quantise_prototypes(centroids: F) -> F:
    """The prototypes' weights as the sidecar's integers (returned as exact floats).

    Nearness is decided on these, on both sides: integer sums are exact whatever
    the order of the terms, so training and the sidecar pick the same prototype.
    """
    top = float(np.abs(centroids).max()) if centroids.size else 0.0
    inv = 1.0 / ((top or 1.0) / float(1 << PROTOTYPE_SCALE_BITS))
    out: F = np.rint(centroids * inv)
    return out


def nearest_prototype(x: SparseRows, centroids: F) -> Ints:
    """Per row, the prototype with the largest dot product (the first on ties; 0 for no features).

    The sidecar compares the same sums of quantised weights: the row's ``1/sqrt(n)``
    scaling does not change which prototype is nearest, so it is left out.
    """
    k = len(centroids)
    if not k:
        return np.zeros(x.n, dtype=np.int64)
    weights = quantise_prototypes(centroids)
    # Sums of at most a few thousand integers below 2^19: exact in float64.
    sims = np.stack(
        [np.bincount(x.rows, weights=weights[c, x.indices], minlength=x.n) for c in range(k)],
        axis=1,
    )
    out: Ints = np.argmax(sims, axis=1)
    return out


def prototypes(x: SparseRows, dim: int, k: int, features: int, seed: int = 0) -> F:
    """``k`` unit-norm prototypes (spherical k-means), each with its ``features`` largest weights.

    Clustering runs on a seeded sample of at most ``NEIGHBOUR_POOL`` rows; rows
    without features are left out of it.
    """
    rng = np.random.default_rng(seed)
    ids = np.nonzero(np.diff(x.indptr) > 0)[0]
    if len(ids) > NEIGHBOUR_POOL:
        ids = np.sort(rng.choice(ids, NEIGHBOUR_POOL, replace=False))
    k = min(k, len(ids))
    if k == 0:
        return np.zeros((0, dim))
    pool = _take(x, ids)

    def centres(assign: Ints, old: F) -> F:
        flat = np.bincount(
            assign[pool.rows] * dim + pool.indices, weights=pool.values, minlength=k * dim
        ).reshape(k, dim)
        norms = np.linalg.norm(flat, axis=1)
        empty = norms == 0
        flat[empty] = old[empty]  # an empty cluster keeps its centre
        norms[empty] = 1.0
        out: F = flat / norms[:, None]
        return out

    seeds = _take(pool, np.sort(rng.choice(pool.n, k, replace=False)))
    centroids = np.zeros((k, dim))
    centroids[seeds.rows, seeds.indices] = seeds.values
    for _ in range(15):
        assign = nearest_prototype(pool, centroids)
        updated = centres(assign, centroids)
        if np.array_equal(updated, centroids):
            break
        centroids = updated
    if features < dim:
        cut = np.argsort(-centroids, axis=1)[:, features:]
        np.put_along_axis(centroids, cut, 0.0, axis=1)
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1), 1e-12)[:, None]
    return centroids


def prototype_means(assign: Ints, y: F, k: int) -> F:
    """Per prototype, the mean score of its rows, shrunk towards the overall mean."""
    counts = np.bincount(assign, minlength=k).astype(np.float64)
    sums = np.stack(
        [np.bincount(assign, weights=y[:, j], minlength=k) for j in range(y.shape[1])], 1
    )
    out: F = (sums + PROTOTYPE_PRIOR * y.mean(axis=0)) / (counts + PROTOTYPE_PRIOR)[:, None]
    return out


def platt(z: F, y: F, steps: int = 50) -> tuple[F, F]:
    """Per column, ``a`` and ``b`` minimising the log-loss of ``sigmoid(a * z + b)`` (Newton)."""
    a = np.ones(z.shape[1])
    b = np.zeros(z.shape[1])
    for _ in range(steps):
        p = _sigmoid(a * z + b)
        r = p - y
        h = p * (1 - p) + 1e-9
        ga, gb = (r * z).mean(axis=0), r.mean(axis=0)
        haa, hab, hbb = (h * z * z).mean(axis=0) + 1e-6, (h * z).mean(axis=0), h.mean(axis=0) + 1e-6
        det = haa * hbb - hab * hab
        a -= (hbb * ga - hab * gb) / det
        b -= (haa * gb - hab * ga) / det
    # A non-positive slope would invert a head's ranking: keep the head as it was then.
    bad = ~(np.isfinite(a) & np.isfinite(b) & (a > 0))
    a[bad], b[bad] = 1.0, 0.0
    return a, b


def _mean_outputs(examples: Sequence[Example], models: Sequence[str]) -> dict[str, float]:
    out = {}
    for model in models:
        seen = [
            e.output_tokens[model] for e in examples if e.output_tokens and model in e.output_tokens
        ]
        if seen:
            out[model] = sum(seen) / len(seen)
    return out


def train(
    examples: Sequence[Example], settings: TrainSettings | None = None
) -> routes_pb2.RouterParams:
    s = settings or TrainSettings()
    if not examples:
        raise ValueError("no training examples")
    models = sorted(examples[0].scores)
    mean_output_tokens = _mean_outputs(examples, models)
    y = np.array([[e.scores[m] for m in models] for e in examples], dtype=np.float64)
    order = list(range(len(examples)))
    random.Random(s.seed).shuffle(order)
    cut = max(1, int(len(order) * s.validation_share))
    val_ids, fit_ids = order[:cut], order[cut:]
    prompts = [e.prompt for e in examples]
    x_fit = sparse_rows([prompts[i] for i in fit_ids], s.dim)
    x_val = sparse_rows([prompts[i] for i in val_ids], s.dim)
    best_l2, best_blend = s.l2_grid[0], 0.0
    blends = sorted({b for b in s.blend_grid if 0.0 <= b <= 1.0} | {0.0})
    calib_a, calib_b = np.ones(len(models)), np.zeros(len(models))
    validated = len(val_ids) >= 20
    proto_grid = sorted({k for k in s.prototype_grid if k > 0})
    shares = sorted({a for a in s.prototype_share_grid if 0.0 < a <= 1.0})
    best_k, best_share = 0, 0.0
    if validated and (
        len(s.l2_grid) > 1 or len(blends) > 1 or s.calibrate or (proto_grid and shares)
    ):
        costs = np.array([[examples[i].costs[m] for m in models] for i in val_ids])
        means = costs.mean(axis=0)
        span = (float(means.min()), float(means.max()))
        y_val = y[val_ids]

        def score(p_val: F) -> tuple[float, float]:
            # The routing objective itself: mean reachable quality over the cost range;
            # log-loss breaks ties.
            area = curve_area(sweep(p_val, costs, y_val, DEFAULT_WEIGHTS[::4]), *span)
            return (round(area, 4), -_log_loss(p_val, y_val))

        best_key, best_z = (-float("inf"), 0.0), np.zeros_like(y_val)
        for l2 in s.l2_grid:
            w, b = _fit(x_fit, y[fit_ids], s.dim, l2, s)
            z = _forward(x_val, w, b)
            if (key := score(_sigmoid(z))) > best_key:
                best_l2, best_key, best_z = l2, key, z
        if len(blends) > 1:
            near_fit = neighbour_targets(x_fit, y[fit_ids], s.dim, s.neighbours, s.seed)
            for blend in blends[1:]:
                target = (1 - blend) * y[fit_ids] + blend * near_fit
                w, b = _fit(x_fit, target, s.dim, best_l2, s)
                z = _forward(x_val, w, b)
                if (key := score(_sigmoid(z))) > best_key:
                    best_blend, best_key, best_z = blend, key, z
        if s.calibrate:
            calib_a, calib_b = platt(best_z, y_val)
        # Prototypes (clusters of the fitted part) vote their mean scores, mixed into the
        # head's probabilities; the head itself is the one chosen above.
        # A mixture is a question of combining probabilities: among the candidates whose
        # validation area is within PROTOTYPE_AREA_SLACK of the best one (differences the
        # validation split cannot resolve), the lowest log-loss (a proper score) wins.
        p_head = _sigmoid(calib_a * best_z + calib_b)
        candidates = [(score(p_head), 0, 0.0)]
        for k in proto_grid:
            centroids = prototypes(x_fit, s.dim, k, s.prototype_features, s.seed)
            means_k = prototype_means(
                nearest_prototype(x_fit, centroids), y[fit_ids], len(centroids)
            )
            vote = means_k[nearest_prototype(x_val, centroids)]
            for share in shares:
                candidates.append((score((1 - share) * p_head + share * vote), k, share))
        top_area = max(key[0] for key, _, _ in candidates)
        near_top = [c for c in candidates if c[0][0] >= top_area - PROTOTYPE_AREA_SLACK]
        _, best_k, best_share = max(near_top, key=lambda c: c[0][1])
    x_all = sparse_rows(prompts, s.dim)
    target = y
    if best_blend > 0:
        near = neighbour_targets(x_all, y, s.dim, s.neighbours, s.seed)
        target = (1 - best_blend) * y + best_blend * near
    w, b = _fit(x_all, target, s.dim, best_l2, s)
    # Platt folded into the head: a * (b + sum w) + c = (a * b + c) + sum (a * w).
    w = w * calib_a
    b = calib_a * b + calib_b
    learned = routes_pb2.LearnedRouter(featurizer=featurize.FEATURIZER, feature_dim=s.dim)
    learned.params["scale"] = 1.0
    learned.params["l2"] = best_l2
    learned.params["neighbour_blend"] = best_blend
    learned.params["examples"] = float(len(examples))
    if best_k:
        centroids = prototypes(x_all, s.dim, best_k, s.prototype_features, s.seed)
        means_k = prototype_means(nearest_prototype(x_all, centroids), y, len(centroids))
        learned.params[SHARE_KEY] = best_share
        for c, centre in enumerate(centroids):
            for f in np.nonzero(centre)[0]:
                learned.params[f"{PROTO_PREFIX}{c}/f/{f}"] = float(centre[f])
            for j, model in enumerate(models):
                learned.params[f"{PROTO_PREFIX}{c}/p/{model}"] = float(means_k[c, j])
    for j, model in enumerate(models):
        learned.heads.append(
            routes_pb2.ModelHead(
                model=model,
                weights=w[:, j].astype(np.float32).tolist(),
                bias=float(b[j]),
                mean_output_tokens=float(mean_output_tokens.get(model, 0.0)),
            )
        )
    # Per-task success rates on the training data: the prior the online update
    # (learning.online) measures feedback against.
    kinds = [featurize.task_kind(p) for p in prompts]
    for kind in sorted(set(kinds)):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        for j, model in enumerate(models):
            learned.params[f"prior/{model}/{kind}"] = float(y[rows, j].mean())
    return routes_pb2.RouterParams(kind="learned", learned=learned)


def predict(params: routes_pb2.RouterParams, prompts: Sequence[str]) -> tuple[list[str], F]:
    """Success probabilities (rows: prompts, columns: models), as the sidecar computes them."""
    learned = params.learned
    dim = int(learned.feature_dim)
    models = [h.model for h in learned.heads]
    w = np.array([list(h.weights) for h in learned.heads], dtype=np.float64).T
    b = np.array([h.bias for h in learned.heads], dtype=np.float64)
    x = sparse_rows(prompts, dim)
    scale = float(learned.params.get("scale", 1.0))
    p = _sigmoid(b + scale * (_forward(x, w, np.zeros_like(b))))
    share, centroids, means = read_prototypes(params, models)
    if share > 0:
        p = (1 - share) * p + share * means[nearest_prototype(x, centroids)]
    return models, p


def read_prototypes(params: routes_pb2.RouterParams, models: Sequence[str]) -> tuple[float, F, F]:
    """The prototype share, centroids (k x dim) and mean scores (k x models) of a model file.

    ``params["proto/<c>/f/<feature>"]`` are prototype ``c``'s non-zero weights and
    ``params["proto/<c>/p/<model>"]`` its mean scores; share 0 when there are none.
    """
    learned = params.learned
    dim = int(learned.feature_dim)
    share, feats, means = prototypes_of(learned.params, dim)
    if not means:
        return 0.0, np.zeros((0, dim)), np.zeros((0, len(models)))
    centroids = np.zeros((len(means), dim))
    for c, row in enumerate(feats):
        centroids[c, np.array(list(row), dtype=np.int64)] = list(row.values())
    table = np.array([[scores.get(m, 0.0) for m in models] for scores in means])
    return share, centroids, table


def dump_model(params: routes_pb2.RouterParams) -> str:
    """The model file (and ConfigMap value): JSON, one object."""
    return json.dumps(
        {"format": MODEL_FORMAT, "params": json_format.MessageToDict(params)}, separators=(",", ":")
    )


#: What a ConfigMap may hold in all (``data`` and ``binaryData``): the API server's limit.
CONFIGMAP_LIMIT = 1024 * 1024
#: Most bytes a gzipped model may expand to (a bomb is refused, not inflated).
MAX_MODEL_TEXT = 64 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


def model_bytes(params: routes_pb2.RouterParams, gzipped: bool) -> bytes:
    """The model file's bytes; gzipped (no timestamp: the same model, the same bytes) for
    models with many heads, which outgrow a ConfigMap as plain JSON (~48 KB per model at
    4096 features; gzip keeps ~40% of it)."""
    text = dump_model(params).encode()
    return gzip.compress(text, mtime=0) if gzipped else text


def model_text(raw: bytes) -> str:
    """A model file's JSON text from its bytes, gunzipping a gzipped one (bounded)."""
    if raw[:2] != GZIP_MAGIC:
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            raise ValueError("router model is neither UTF-8 JSON nor gzip") from exc
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
            text = fh.read(MAX_MODEL_TEXT + 1)
    except (OSError, EOFError) as exc:
        raise ValueError(f"router model is a damaged gzip file: {exc}") from exc
    if len(text) > MAX_MODEL_TEXT:
        raise ValueError(f"router model expands to more than {MAX_MODEL_TEXT} bytes")
    try:
        return text.decode()
    except UnicodeDecodeError as exc:
        raise ValueError("router model (gunzipped) is not UTF-8 JSON") from exc


def read_model_file(path: Path) -> routes_pb2.RouterParams:
    """A model file from disk, plain JSON or gzipped."""
    return load_model(model_text(path.read_bytes()))


def load_model(text: str) -> routes_pb2.RouterParams:
    """Parse a model file; ``ValueError`` with a clear message when it is not one."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"router model is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise ValueError(f"router model must be a {MODEL_FORMAT!r} document")
    params = routes_pb2.RouterParams()
    try:
        json_format.ParseDict(data.get("params", {}), params)
    except json_format.ParseError as exc:
        raise ValueError(f"router model does not match RouterParams: {exc}") from exc
    if not params.learned.heads:
        raise ValueError("router model has no model heads")
    return params
