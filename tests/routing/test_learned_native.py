"""The compiled learned-router scorer (switchman_native) gives the Python scorer's
probabilities bit for bit: with and without prototypes and online offsets, on the
packed path (2..MAX_FEATURES features) and on the fallbacks (0, 1, more than
MAX_FEATURES), for the compiled ``Features`` and for any collection of indices.

The module imports switchman_native directly: without it these tests fail.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest
from switchman_native import _native

from switchman_protocol import featurize
from switchman_protocol.v1 import routes_pb2 as pb
from switchman_sidecar.routing import Router, RouteRequest
from switchman_sidecar.routing.learned import MAX_FEATURES, LearnedScorer

DATA = Path(__file__).resolve().parents[2].parent / "shared/data/routing/llmrouter"
TASKS = [*featurize.TASK_KINDS, "*", "other", ""]


def bits(xs: Sequence[float]) -> list[str]:
    """Floats compared exactly (NaN included)."""
    return [float.hex(x) for x in xs]


def params(
    rng: random.Random,
    dim: int,
    heads: int,
    *,
    spread: float = 0.3,
    prototypes: int = 0,
    share: float = 0.4,
    offsets: bool = False,
    scale: float | None = None,
    ties: bool = False,
) -> pb.RouterParams:
    learned = pb.LearnedRouter(featurizer=featurize.FEATURIZER, feature_dim=dim)
    for j in range(heads):
        weights = [rng.gauss(0, spread) for _ in range(dim)]
        weights[rng.randrange(dim)] = -spread * rng.choice([1, 40])
        if ties:  # the largest weight 1.0: quanta of 2^-50, and weights halfway between
            weights = [max(-0.5, min(0.5, w)) for w in weights]
            weights[0] = 1.0
            for k in range(1, min(dim, 9)):
                weights[k] = (rng.randrange(-50, 50) + 0.5) * 2.0**-50
        learned.heads.append(
            pb.ModelHead(model=f"m{j}", weights=weights, bias=rng.choice([0.0, -0.0, 1.5, -2.0]))
        )
    if scale is not None:
        learned.params["scale"] = scale
    if prototypes:
        learned.params["prototype_share"] = share
        for c in range(prototypes):
            for f in rng.sample(range(dim), min(dim, rng.choice([1, 8, 64]))):
                learned.params[f"proto/{c}/f/{f}"] = rng.choice([rng.random(), -rng.random()])
            for j in range(heads):
                learned.params[f"proto/{c}/p/m{j}"] = rng.random()
        if prototypes > 2:
            for key in [k for k in learned.params if k.startswith("proto/1/f/")]:
                del learned.params[key]
            for key in [k for k in learned.params if k.startswith("proto/0/f/")]:
                learned.params["proto/1/f/" + key.split("/")[-1]] = learned.params[key]
    if offsets:
        for j in range(heads):
            for task in rng.sample(TASKS, 3):
                learned.params[f"adj/m{j}/{task}"] = rng.choice([0.0, -0.0, 0.7, -1.3, 40.0])
        learned.params["adj/not-a-head/code"] = 2.0
    return pb.RouterParams(kind="learned", learned=learned)


def learned_table(p: pb.RouterParams, models: int, price: float) -> pb.RouteTable:
    """A table of models ``m0..`` (model j priced (j + 1) x ``price``, output 4x) routed
    by ``p`` with cost weight 0.3."""
    table = pb.RouteTable(team="t", quality_bar=0.6, router=p)
    for j in range(models):
        table.models.append(
            pb.Model(
                name=f"m{j}",
                provider=pb.PROVIDER_OPENAI,
                endpoint="http://127.0.0.1:1/v1",
                price=pb.Price(input_per_mtok=price * (j + 1), output_per_mtok=4 * price * (j + 1)),
            )
        )
    table.router.cost_weight = 0.3
    return table


def pair(p: pb.RouterParams) -> tuple[LearnedScorer, LearnedScorer]:
    names = {h.model for h in p.learned.heads}
    compiled, python = LearnedScorer(p, names), LearnedScorer(p, names, native=False)
    assert compiled.native and not python.native
    return compiled, python


def agree(compiled: LearnedScorer, python: LearnedScorer, indices: Collection[int]) -> None:
    for task in TASKS:
        assert bits(compiled.predict_list(indices, task)) == bits(
            python.predict_list(indices, task)
        ), (len(indices), task)


def prompts() -> list[str]:
    rows = [json.loads(line)["query"] for line in (DATA / "default_query_train.jsonl").open()]
    rows += [r["question"] for r in json.loads((DATA / "dcrouter_train.json").read_text())]
    random.Random(2).shuffle(rows)
    return rows


CASES = [
    dict(dim=4096, heads=9),
    dict(dim=4096, heads=9, offsets=True, scale=0.7),
    dict(dim=4096, heads=9, prototypes=32),
    dict(dim=4096, heads=9, prototypes=32, offsets=True, share=1.0),
    dict(dim=1024, heads=1, prototypes=1, offsets=True),
    dict(dim=2, heads=3, offsets=True),
    dict(dim=64, heads=5, ties=True, prototypes=2),
    dict(dim=2, heads=2, prototypes=3, offsets=True),
    dict(dim=256, heads=12, spread=1e-6, prototypes=5),
    dict(dim=1 << 14, heads=4, spread=50.0, offsets=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_prompts_of_the_shared_data_score_the_same(case: dict[str, object]) -> None:
    rng = random.Random(str(case))
    compiled, python = pair(params(rng, **case))  # type: ignore[arg-type]
    texts = [*prompts()[:1500], "", "?", "x", "```" * 400, "\ud800" * 50, "word " * 50_000]
    for text in texts:
        kind, features = compiled.analyze(text)
        ref_kind, ref_features = python.analyze(text)
        assert isinstance(features, _native.Features)
        assert (kind, set(features)) == (ref_kind, ref_features)
        assert len(features) == len(ref_features)
        assert bits(compiled.predict_list(features, kind)) == bits(
            python.predict_list(ref_features, kind)
        ), text[:60]
        assert compiled._core is not None
        fused_kind, fused = compiled._core.analyze_predict(text)
        assert (fused_kind, bits(fused)) == (kind, bits(python.predict_list(ref_features, kind)))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_any_collection_of_indices_scores_the_same(case: dict[str, object]) -> None:
    rng = random.Random(repr(case))
    compiled, python = pair(params(rng, **case))  # type: ignore[arg-type]
    dim = compiled.dim
    for n in (0, 1, 2, 3, 85, 1800, MAX_FEATURES, MAX_FEATURES + 1, 2 * MAX_FEATURES, dim):
        if n > dim:
            continue
        picked = rng.sample(range(dim), n)
        agree(compiled, python, set(picked))
        agree(compiled, python, picked)  # a list: its order (the float fallback sums in it)
        agree(compiled, python, tuple(picked))
        if n:
            agree(compiled, python, picked + picked[:3])  # repeated indices count twice
            agree(compiled, python, [i - dim for i in picked])  # negative: from the end


def test_features_of_another_dimension_and_bad_indices() -> None:
    rng = random.Random(8)
    compiled, python = pair(params(rng, 1024, 3, prototypes=4, offsets=True))
    other = LearnedScorer(params(rng, 256, 2), {"m0", "m1"})
    _, features = other.analyze("Who wrote War and Peace? " * 30)
    agree(compiled, python, features)  # read as a collection of ints
    assert min(features) >= 0 and max(features) < 256 and len(list(features)) == len(features)
    for bad in ([1024], [-1025], [3, 5000]):
        for scorer in (compiled, python):
            with pytest.raises(IndexError):
                scorer.predict_list(bad, "chat")
    with pytest.raises(ValueError, match="power of two"):
        _native.LearnedScorer(3, [[0.0] * 3], [0.0], ["a"], 1.0, 1.0, [], 0.0, [], [])
    with pytest.raises(ValueError):
        _native.LearnedScorer(4, [[0.0] * 3], [0.0], ["a"], 1.0, 1.0, [], 0.0, [], [])


def test_routers_with_either_scorer_decide_the_same() -> None:
    rng = random.Random(9)
    for case in ({}, {"prototypes": 16, "offsets": True}):
        p = params(rng, 4096, 9, **case)  # type: ignore[arg-type]
        table = learned_table(p, 9, price=0.1)
        compiled, python = Router(table, seed=1), Router(table, seed=1)
        python._scorer = LearnedScorer(p, {f"m{j}" for j in range(9)}, native=False)
        assert compiled._scorer is not None and compiled._scorer.native
        for text in prompts()[:400]:
            request = RouteRequest(model="auto", prompt_text=text, input_tokens=len(text) // 4)
            assert compiled.decide(request) == python.decide(request), text[:60]


def test_the_python_scorer_serves_without_the_compiled_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from switchman_sidecar.routing import learned

    monkeypatch.setattr(learned, "_native", None)
    p = params(random.Random(3), 256, 2, prototypes=2, offsets=True)
    scorer = LearnedScorer(p, {"m0", "m1"})
    assert not scorer.native
    kind, indices = scorer.analyze("Solve for x: 3x + 7 = 22")
    assert isinstance(indices, set) and kind == "math"
    probs = scorer.predict_list(indices, kind)
    assert len(probs) == 2 and all(0.0 < q < 1.0 for q in probs)


def test_compiled_rank_order_equals_the_python_ranking() -> None:
    from switchman_sidecar.routing import selection

    rng = random.Random(12)
    values = [0.0, -0.0, 0.25, 0.5, 0.6, 0.9, 1.0, 1e-300, float("inf"), -float("inf")]
    compiled = 0
    for case in range(6000):
        n = rng.choice([0, 1, 2, 3, 9, 27, 40])
        tied = case % 3 == 0  # few distinct values: ties on every key
        qualities = [rng.choice(values) if tied else rng.random() for _ in range(n)]
        costs = [rng.choice(values[:8]) if tied else rng.random() / 1e3 for _ in range(n)]
        models = [rng.choice(["a", "b", "é", "m10", "m9"]) for _ in range(n)]
        if case % 50 == 0 and n:
            (qualities if case % 100 else costs)[rng.randrange(n)] = float("nan")
        bar = rng.choice([0.0, 0.0, 0.6, 1.0])
        cost_weight = rng.choice([0.0, 0.3, 1.0, 1e-9])
        native = _native.rank_order(qualities, costs, models, bar, cost_weight)
        expect = selection._rank_order_py(qualities, costs, models, bar, cost_weight)
        assert selection.rank_order(qualities, costs, models, bar, cost_weight) == expect
        if native is not None:
            compiled += 1
            assert native == expect, (qualities, costs, models, bar, cost_weight)
        else:  # only NaN (as an input or a key, e.g. 0 * inf) sends it to Python
            top, keep = max(costs), 1.0 - cost_weight
            keys = [cost_weight * (c / top) if top > 0 else 0.0 for c in costs]
            keys = [k - keep * q for k, q in zip(keys, qualities, strict=True)]
            nan_key = cost_weight > 0 and any(k != k for k in keys)
            assert any(x != x for x in qualities + costs) or nan_key
    assert compiled > 5000


def test_a_router_without_the_compiled_package_decides_the_same(tmp_path: Path) -> None:
    """The whole fallback (featurizer, scorer, ranking, in Python) in a process where
    switchman_native cannot be imported: the same decisions, field for field."""
    rng = random.Random(10)
    p = params(rng, 1024, 4, prototypes=3, offsets=True)
    table = learned_table(p, 4, price=0.2)
    table.output_budget.enabled = True
    table.output_budget.choices.extend([256, 2048])
    (tmp_path / "table.pb").write_bytes(table.SerializeToString())
    texts = [*prompts()[:150], "", "\ud800?", "word " * 5000]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    code = (
        "import dataclasses, json, sys\n"
        "sys.modules['switchman_native'] = None\n"
        "from switchman_protocol.v1 import routes_pb2 as pb\n"
        "from switchman_sidecar.routing import Router, RouteRequest\n"
        "from switchman_protocol import featurize\n"
        "assert not featurize.NATIVE\n"
        "d = sys.argv[1]\n"
        "t = pb.RouteTable.FromString(open(d + '/table.pb', 'rb').read())\n"
        "r = Router(t, seed=1)\n"
        "assert r._scorer is not None and not r._scorer.native\n"
        "out = [dataclasses.asdict(r.decide(RouteRequest('auto', prompt_text=x,"
        " input_tokens=len(x) // 4))) for x in json.load(open(d + '/texts.json'))]\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    router = Router(table, seed=1)
    assert router._scorer is not None and router._scorer.native
    compiled = [
        dataclasses.asdict(
            router.decide(RouteRequest("auto", prompt_text=x, input_tokens=len(x) // 4))
        )
        for x in texts
    ]
    assert json.loads(json.dumps(compiled)) == json.loads(run.stdout)
