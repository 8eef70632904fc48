"""The learned router: training, the sidecar scorer agreeing with it, eval, online updates."""

from __future__ import annotations

import base64
import importlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

from switchman_operator.learning import (
    TrainSettings,
    dump_model,
    load_model,
    parse_examples,
    predict,
    split,
    train,
    update_router,
)
from switchman_operator.learning.curves import choices
from switchman_operator.learning.dataset import DatasetError, from_llmrouter
from switchman_operator.learning.evaluate import (
    EvalSettings,
    _beats,
    bootstrap,
    cross_validate,
    evaluate,
    fold_ids,
    hull_cost_at,
)
from switchman_protocol.v1 import routes_pb2 as pb
from switchman_protocol.v1 import usage_pb2
from switchman_sidecar.routing import Router, RouteRequest

SMALL = TrainSettings(dim=256, l2_grid=(1e-3,), epochs=150)
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routing" / "llmrouter"


def synthetic(n: int, seed: int = 0) -> list[str]:
    """cheap answers chat well and math badly; strong answers both."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        if i % 2:
            prompt = f"Solve for x: {a} x + {b} = {a * b}. Compute the remainder too."
            scores = {"cheap": float(rng.random() < 0.1), "strong": float(rng.random() < 0.9)}
        else:
            topic = rng.choice(["weather", "movies", "your weekend", "coffee", "travel"])
            prompt = f"hey there, let's chat about {topic} for a bit"
            scores = {"cheap": float(rng.random() < 0.9), "strong": float(rng.random() < 0.95)}
        costs = {"cheap": 0.0001, "strong": 0.01}
        lines.append(json.dumps({"prompt": prompt, "scores": scores, "costs": costs}))
    return lines


def _model(name: str, price: float, quality: float) -> pb.Model:
    return pb.Model(
        name=name,
        provider=pb.PROVIDER_OPENAI,
        endpoint="http://127.0.0.1:1/v1",
        price=pb.Price(input_per_mtok=price, output_per_mtok=price * 4),
        quality=pb.Quality(overall=quality),
    )


def learned_table(params: pb.RouterParams, bar: float = 0.6) -> pb.RouteTable:
    table = pb.RouteTable(
        team="t",
        models=[_model("cheap", 0.1, 0.7), _model("strong", 5.0, 0.9)],
        quality_bar=bar,
        default_strategy=pb.STRATEGY_BALANCED,
    )
    table.router.CopyFrom(params)
    return table


MATH = "Solve for x: 7 x + 5 = 40. Compute the remainder too."
CHAT = "hey there, let's chat about coffee for a bit"


@pytest.fixture(scope="module")
def params() -> pb.RouterParams:
    return train(parse_examples(synthetic(400)), SMALL)


def test_router_routes_by_predicted_success(params: pb.RouterParams) -> None:
    router = Router(learned_table(params))
    math, chat = (
        router.decide(RouteRequest("auto", prompt_text=MATH)),
        router.decide(RouteRequest("auto", prompt_text=CHAT)),
    )
    assert math.candidates[0] == "strong" and chat.candidates[0] == "cheap"
    assert chat.reason == "router" and chat.strategy == "learned"
    assert chat.score is not None and chat.score > 0.6 and math.scores["cheap"] < 0.4


def test_sidecar_scorer_matches_training_prediction(params: pb.RouterParams) -> None:
    models, probs = predict(params, [MATH, CHAT])
    router = Router(learned_table(params, bar=0.0))
    for row, prompt in enumerate([MATH, CHAT]):
        decision = router.decide(RouteRequest("auto", prompt_text=prompt))
        for col, name in enumerate(models):
            assert decision.scores[name] == pytest.approx(probs[row, col], abs=1e-3)


def test_model_file_round_trip_and_errors(params: pb.RouterParams) -> None:
    assert load_model(dump_model(params)) == params
    with pytest.raises(ValueError, match="not JSON"):
        load_model("{nope")
    with pytest.raises(ValueError, match="switchman-router/v1"):
        load_model('{"format": "other"}')
    bad = pb.RouterParams()
    bad.CopyFrom(params)
    bad.learned.featurizer = "hash-v99"
    with pytest.raises(ValueError, match="featurizer"):
        Router(learned_table(bad))


def test_gzipped_model_files_and_configmap_binary_data(
    params: pb.RouterParams, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switchman_operator.learning import model_bytes, read_model_file

    train_module = importlib.import_module("switchman_operator.learning.train")
    from switchman_operator.learning.policy import model_from_configmaps
    from switchman_operator.resources import configmap_data

    plain, packed = model_bytes(params, gzipped=False), model_bytes(params, gzipped=True)
    assert plain == dump_model(params).encode() and packed[:2] == b"\x1f\x8b"
    assert len(packed) < len(plain) / 2 and packed == model_bytes(params, gzipped=True)
    for name, blob in (("m.json", plain), ("m.json.gz", packed)):
        (tmp_path / name).write_bytes(blob)
        assert read_model_file(tmp_path / name) == params
    # A ConfigMap as the API returns it: text under data, a gzipped file under binaryData.
    body = {
        "data": {"plain.json": plain.decode()},
        "binaryData": {
            "model.json": base64.b64encode(packed).decode(),
            "raw.json": base64.b64encode(plain).decode(),
            "junk": base64.b64encode(b"\x1f\x8b not gzip").decode(),
        },
    }
    maps = {"router": configmap_data(body)}
    for key in ("plain.json", "model.json", "raw.json"):
        assert model_from_configmaps(maps, "router", key) == params
    assert "damaged gzip" in str(model_from_configmaps(maps, "router", "junk"))
    # Damaged, not UTF-8, or a bomb: refused with a reason, never inflated.
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="damaged gzip"):
        read_model_file(tmp_path / "cut.gz")
    (tmp_path / "latin1.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match="neither UTF-8 JSON nor gzip"):
        read_model_file(tmp_path / "latin1.json")
    monkeypatch.setattr(train_module, "MAX_MODEL_TEXT", len(plain) - 1)
    with pytest.raises(ValueError, match="expands to more than"):
        read_model_file(tmp_path / "m.json.gz")


def test_eval_beats_baselines_on_held_out_synthetic(params: pb.RouterParams) -> None:
    held_out = parse_examples(synthetic(200, seed=9))
    result = evaluate(params, held_out, parse_examples(synthetic(400)))
    assert result["strongest"] == "strong"
    router = result["router"]
    # 95% of strong's quality for a fraction of its cost: cheap answers the chat half.
    assert router["cost_at_95pct"] < 0.6 * result["strongest_cost"]
    assert router["cost_at_95pct"] < result["baselines"]["random_matched_cost"]["cost_at_95pct"]
    assert json.loads(json.dumps(result)) == result  # one JSON document


@pytest.mark.parametrize(
    ("ours", "theirs", "beats"),
    [
        ((1.0, 2.0), (1.0, 3.0), True),  # tie at 95% (both at the floor), cheaper at 100%
        ((1.0, 3.0), (1.0, 3.0), False),  # ties only
        ((0.9, 3.1), (1.0, 3.0), False),  # cheaper at one target, dearer at the other
        ((0.9, None), (1.0, None), True),  # neither reaches 100%
        ((0.9, None), (1.0, 5.0), False),  # only the baseline reaches 100%
        ((0.9, 4.0), (1.0, None), True),  # only the router does
    ],
)
def test_beating_a_baseline_means_nowhere_worse_and_somewhere_better(
    ours: tuple[float | None, float | None],
    theirs: tuple[float | None, float | None],
    beats: bool,
) -> None:
    def at(costs: tuple[float | None, float | None]) -> dict[str, float | None]:
        return {"cost_at_95pct": costs[0], "cost_at_100pct": costs[1]}

    result = {"router": at(ours), "baselines": {"b": at(theirs)}}
    assert _beats(result) == {"b": beats}


def test_eval_bootstrap_counts_strict_wins_on_paired_resamples(params: pb.RouterParams) -> None:
    held_out = parse_examples(synthetic(200, seed=9))
    settings = EvalSettings(bootstrap=60, bootstrap_seed=4)
    result = evaluate(params, held_out, parse_examples(synthetic(400)), settings)
    boot = result["bootstrap"]
    assert boot["resamples"] == 60 and boot["seed"] == 4
    shares = boot["router_better_share"]
    # The synthetic router sends the chat half to the cheap model on any resample.
    assert shares["random_matched_cost"]["cost_at_95pct"] == 1.0
    assert shares["always_strongest"]["cost_at_95pct"] == 1.0
    assert all(0.0 <= v <= 1.0 for tally in shares.values() for v in tally.values())
    assert (
        evaluate(params, held_out, None, settings)["bootstrap"]
        == evaluate(params, held_out, None, settings)["bootstrap"]
    )  # seeded
    assert "bootstrap" not in evaluate(params, held_out, None)  # off unless asked for

    # Identical choices are never strictly better; choices that always take the strongest
    # model only tie always-strongest; the cheapest everywhere never reaches 95%.
    rng = np.random.default_rng(0)
    costs = np.tile([1.0, 10.0], (300, 1))
    scores = np.stack([rng.random(300) < 0.5, rng.random(300) < 0.9], axis=1).astype(float)
    p = np.stack([rng.random(300), rng.random(300)], axis=1)
    weights = (0.0, 0.3, 0.6, 1.0)
    chosen = choices(p, costs, weights)
    same = bootstrap(chosen, chosen, costs, scores, EvalSettings(bootstrap=50))
    assert set(same["router_better_share"]["nearest_neighbour"].values()) == {0.0}
    strong = np.ones_like(chosen)
    vs_strong = bootstrap(strong, chosen, costs, scores, EvalSettings(bootstrap=50))
    assert vs_strong["router_better_share"]["always_strongest"]["all_targets"] == 0.0
    cheap = np.zeros_like(chosen)
    vs_cheap = bootstrap(cheap, chosen, costs, scores, EvalSettings(bootstrap=50))
    assert set(vs_cheap["router_better_share"]["random_matched_cost"].values()) == {0.0}
    # The oracle (strong only where cheap fails) beats every baseline on every resample.
    oracle = np.tile(((scores[:, 0] < 1) & (scores[:, 1] > 0)).astype(np.int64), (4, 1))
    best = bootstrap(oracle, chosen, costs, scores, EvalSettings(bootstrap=50))
    assert best["router_better_share"]["always_strongest"]["all_targets"] == 1.0
    assert best["router_better_share"]["random_matched_cost"]["all_targets"] == 1.0


def test_cross_validation_predicts_each_prompt_by_the_fold_that_left_it_out() -> None:
    examples = parse_examples(synthetic(240, seed=5))
    parts = fold_ids(len(examples), 3, seed=2)
    assert sorted(i for part in parts for i in part) == list(range(240))
    assert fold_ids(len(examples), 3, seed=2) == parts != fold_ids(len(examples), 3, seed=3)
    with pytest.raises(ValueError, match="folds must be"):
        fold_ids(5, 6, 0)
    result = cross_validate(examples, 3, SMALL, EvalSettings(bootstrap=20), seed=2)
    assert result["examples"] == 240 and result["folds"] == 3 and result["fold_seed"] == 2
    assert result["bootstrap"]["resamples"] == 20
    # Each fold's figures are those of a router trained on the other two folds alone,
    # evaluated on that fold with the other two as the neighbours' votes: no leakage.
    for part, fold in zip(parts, result["per_fold"], strict=True):
        held_out = [examples[i] for i in part]
        fit = [e for i, e in enumerate(examples) if i not in set(part)]
        alone = evaluate(train(fit, SMALL), held_out, fit)
        assert fold["examples"] == len(part)
        assert fold["router"]["cost_at_95pct"] == alone["router"]["cost_at_95pct"]
        assert fold["router"]["area"] == alone["router"]["area"]
        assert fold["nearest_neighbour"]["area"] == alone["baselines"]["nearest_neighbour"]["area"]
        assert fold["beats_baselines"] == alone["beats_baselines"]
    # Pooled over all prompts, the synthetic router still sends the chat half cheap.
    assert result["router"]["cost_at_95pct"] < 0.6 * result["strongest_cost"]
    # Trained in worker processes, the folds give the same document.
    assert cross_validate(examples, 3, SMALL, EvalSettings(bootstrap=20), seed=2, jobs=2) == result


def test_random_hull_interpolates() -> None:
    assert hull_cost_at([(1.0, 0.5), (3.0, 0.9)], 0.7) == pytest.approx(2.0)
    assert hull_cost_at([(1.0, 0.5)], 0.7) is None


def test_dataset_errors_name_the_line() -> None:
    with pytest.raises(DatasetError, match="line 1: needs a string 'prompt'"):
        parse_examples(['{"scores": {"a": 1}}'])
    with pytest.raises(DatasetError, match="line 2: scores models"):
        parse_examples(
            [
                '{"prompt": "x", "scores": {"a": 1}, "costs": {"a": 1}}',
                '{"prompt": "y", "scores": {"b": 1}, "costs": {"b": 1}}',
            ]
        )
    with pytest.raises(DatasetError, match="no price"):
        parse_examples(['{"prompt": "x", "scores": {"a": 1}, "tokens": {"a": {"input": 3}}}'])
    with pytest.raises(DatasetError, match=r"outside 0\.\.1"):
        parse_examples(['{"prompt": "x", "scores": {"a": 7}, "costs": {"a": 1}}'])
    ok = parse_examples(
        ['{"prompt": "x", "scores": {"a": 1}, "tokens": {"a": {"input": 1000, "output": 500}}}'],
        {"a": (1.0, 2.0)},
    )
    assert ok[0].costs["a"] == pytest.approx(0.002) and ok[0].output_tokens == {"a": 500.0}


def cheap_fails_chat(params: pb.RouterParams) -> pb.RouterParams:
    """Six batches of explicit ratings: every chat answer of "cheap" was bad."""
    current = params
    for batch in range(6):
        feedback = [
            usage_pb2.Feedback(
                request_id=f"r{batch}-{i}",
                model="cheap",
                task_kind="chat",
                score=0.0,
                source="explicit",
            )
            for i in range(10)
        ]
        current = update_router(current, [], feedback)
    return current


def test_traffic_shifts_when_a_model_starts_failing_a_task(params: pb.RouterParams) -> None:
    """EvoRoute: cheap starts failing chat; feedback moves chat traffic to strong."""
    before = Router(learned_table(params))
    assert before.decide(RouteRequest("auto", prompt_text=CHAT)).candidates[0] == "cheap"
    current = cheap_fails_chat(params)
    assert current.learned.params["adj/cheap/chat"] < -1.0
    after = Router(learned_table(current))
    assert after.decide(RouteRequest("auto", prompt_text=CHAT)).candidates[0] == "strong"
    # Other task kinds keep their routing, and the input parameters were not modified.
    assert after.decide(RouteRequest("auto", prompt_text=MATH)).candidates[0] == "strong"
    assert "adj/cheap/chat" not in params.learned.params
    # Recovery: good outcomes win the traffic back.
    for _ in range(40):
        feedback = [
            usage_pb2.Feedback(model="cheap", task_kind="chat", score=1.0, source="shadow")
            for _ in range(10)
        ]
        current = update_router(current, [], feedback)
    recovered = Router(learned_table(current))
    assert recovered.decide(RouteRequest("auto", prompt_text=CHAT)).candidates[0] == "cheap"


def test_cascade_escalations_count_as_failures_once() -> None:
    params = pb.RouterParams()
    records = [
        usage_pb2.UsageRecord(request_id="a", model="m", task_kind="math", cascade_escalated=True),
        usage_pb2.UsageRecord(request_id="b", model="m", task_kind="math", cascade_escalated=True),
    ]
    feedback = [usage_pb2.Feedback(request_id="a", model="m", task_kind="math", source="cascade")]
    out = update_router(params, records, feedback, priors={"m": {"math": 0.8}})
    assert out.learned.params["fb_n/m/math"] == 2.0  # "a" once (feedback), "b" from its record
    assert out.learned.params["adj/m/math"] < 0
    assert update_router(params, [], []) == params


def test_strategies_use_feedback_offsets_too() -> None:
    table = pb.RouteTable(
        team="t",
        models=[_model("a", 0.1, 0.8), _model("b", 1.0, 0.8)],
        default_strategy=pb.STRATEGY_COST,
        quality_bar=0.7,
    )
    assert Router(table).decide(RouteRequest("auto", prompt_text=CHAT)).candidates[0] == "a"
    fb = [usage_pb2.Feedback(model="a", task_kind="chat", score=0.0) for _ in range(60)]
    table.router.CopyFrom(update_router(table.router, [], fb, priors={"a": {"chat": 0.8}}))
    assert Router(table).decide(RouteRequest("auto", prompt_text=CHAT)).candidates[0] == "b"


def test_llmrouter_adapter_and_a_small_held_out_run() -> None:
    # The reference data sits beside the repository (../shared/data), in CI too.
    assert DATA.exists(), f"reference data missing at {DATA}"
    rows = from_llmrouter(DATA)
    assert len(rows) == 5608
    examples = parse_examples(json.dumps(r) for r in rows)
    assert examples[0].output_tokens and all(c > 0 for c in examples[0].costs.values())
    fit, held_out = split(examples, 0.1, seed=3)
    trained = train(fit[:2000], TrainSettings(dim=1024, l2_grid=(1e-3,), epochs=100))
    result = evaluate(trained, held_out, fit[:2000])
    # Even a small run reaches 95% of the strongest model's quality far cheaper than
    # always-strongest and than random mixing.
    ours = result["router"]["cost_at_95pct"]
    assert ours is not None and ours < 0.5 * result["strongest_cost"]
    assert ours < result["baselines"]["random_matched_cost"]["cost_at_95pct"]


def test_packed_scorer_equals_float_sums_on_any_weights() -> None:
    from switchman_protocol import featurize
    from switchman_sidecar.routing.learned import MAX_FEATURES, LearnedScorer

    rng = random.Random(3)
    dim = 1 << 13
    for spread in (1e-6, 0.3, 50.0):
        learned = pb.LearnedRouter(featurizer=featurize.FEATURIZER, feature_dim=dim)
        names = [f"m{j}" for j in range(rng.randint(1, 12))]
        for name in names:
            weights = [rng.gauss(0, spread) for _ in range(dim)]
            weights[rng.randrange(dim)] = -spread * 40  # one extreme weight sets the scale
            learned.heads.append(pb.ModelHead(model=name, weights=weights, bias=rng.gauss(0, 1)))
        params = pb.RouterParams(kind="learned", learned=learned)
        scorer = LearnedScorer(params, set(names))
        rows = [[h.weights[i] for h in learned.heads] for i in range(dim)]
        for n in (0, 1, 2, 85, 1800, MAX_FEATURES, MAX_FEATURES + 1, dim):
            indices = set(rng.sample(range(dim), n))
            expect = [sum(rows[i][j] for i in indices) for j in range(len(names))]
            got = scorer.totals(indices)
            tolerance = 1e-9 * spread * max(n, 1) + 1e-12
            assert got == pytest.approx(expect, abs=tolerance), (spread, n)


def test_scorer_refuses_non_finite_weights(params: pb.RouterParams) -> None:
    bad = pb.RouterParams()
    bad.CopyFrom(params)
    bad.learned.heads[0].weights[3] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        Router(learned_table(bad))


def test_neighbour_targets_leave_each_prompt_out_and_match_brute_force(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    from switchman_operator.learning.train import neighbour_targets, sparse_rows

    rng = random.Random(5)
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "solve",
        "chat",
        "code",
        "math",
        "tea",
        "coffee",
        "one",
        "two",
    ]
    prompts = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 8))) for _ in range(300)]
    prompts += prompts[:5]  # exact duplicates: each may be the other's neighbour, never its own
    y = np.array([[rng.random(), float(rng.random() < 0.5)] for _ in prompts])
    x = sparse_rows(prompts, 512)
    dense = np.zeros((x.n, 512))
    dense[x.rows, x.indices] = x.values
    sim = dense @ dense.T
    np.fill_diagonal(sim, -np.inf)
    got = neighbour_targets(x, y, 512, 1)
    for i in range(x.n):
        nearest = np.flatnonzero(sim[i] >= sim[i].max() - 1e-9)
        # Ties may pick any of the nearest: the result is one of their targets.
        assert any(np.allclose(got[i], y[j]) for j in nearest), i
    # A capped reference pool still never returns a prompt's own target.
    unique = np.arange(x.n, dtype=float)[:, None]
    module = importlib.import_module("switchman_operator.learning.train")
    monkeypatch.setattr(module, "NEIGHBOUR_POOL", 100)
    capped = neighbour_targets(x, unique, 512, 1)
    assert not np.any(capped[:, 0] == unique[:, 0])


def test_platt_recovers_a_known_scaling_and_keeps_rankings() -> None:

    from switchman_operator.learning.train import platt

    gen = np.random.default_rng(0)
    z = gen.normal(size=(20_000, 2))
    truth = 1.0 / (1.0 + np.exp(-(np.array([2.0, 0.5]) * z + np.array([-1.0, 0.3]))))
    y = (gen.random(z.shape) < truth).astype(float)
    a, b = platt(z, y)
    assert a == pytest.approx([2.0, 0.5], abs=0.1) and b == pytest.approx([-1.0, 0.3], abs=0.1)
    # A head whose scores run against the outcomes is left alone, not inverted.
    a, b = platt(z[:, :1], 1.0 - y[:, :1])
    assert (a[0], b[0]) == (1.0, 0.0)


def test_training_records_its_choices_and_the_sidecar_agrees() -> None:

    settings = TrainSettings(
        dim=256, l2_grid=(1e-3,), epochs=150, blend_grid=(0.0, 0.5), calibrate=True
    )
    trained = train(parse_examples(synthetic(400)), settings)
    assert trained.learned.params["neighbour_blend"] in (0.0, 0.5)
    models, probs = predict(trained, [MATH, CHAT])
    router = Router(learned_table(trained, bar=0.0))
    for row, prompt in enumerate([MATH, CHAT]):
        decision = router.decide(RouteRequest("auto", prompt_text=prompt))
        for col, name in enumerate(models):
            assert decision.scores[name] == pytest.approx(probs[row, col], abs=1e-6)
    plain = train(
        parse_examples(synthetic(400)),
        TrainSettings(dim=256, l2_grid=(1e-3,), epochs=150, blend_grid=(0.0,), calibrate=False),
    )
    assert plain.learned.params["neighbour_blend"] == 0.0
    # Calibration moves the heads (folded into weights and bias) but keeps what they say.
    plain_probs = predict(plain, [MATH, CHAT])[1]
    assert not np.allclose(plain_probs, probs)
    assert plain_probs[0, 1] > 0.6 and probs[0, 1] > 0.6
    assert plain_probs[0, 0] < 0.4 and probs[0, 0] < 0.4


def _with_prototypes(
    params: pb.RouterParams, prompts: list[str], y: list[list[float]], k: int, share: float
) -> pb.RouterParams:
    """``params`` plus ``k`` prototypes of ``prompts``, as ``train`` stores them."""

    from switchman_operator.learning.train import (
        nearest_prototype,
        prototype_means,
        prototypes,
        sparse_rows,
    )

    dim = int(params.learned.feature_dim)
    x = sparse_rows(prompts, dim)
    centroids = prototypes(x, dim, k, 8, seed=1)
    means = prototype_means(nearest_prototype(x, centroids), np.array(y), len(centroids))
    out = _without_prototypes(params)
    out.learned.params["prototype_share"] = share
    models = [h.model for h in params.learned.heads]
    for c, centre in enumerate(centroids):
        for f in np.nonzero(centre)[0]:
            out.learned.params[f"proto/{c}/f/{f}"] = float(centre[f])
        for j, model in enumerate(models):
            out.learned.params[f"proto/{c}/p/{model}"] = float(means[c, j])
    return out


def _without_prototypes(params: pb.RouterParams) -> pb.RouterParams:
    out = pb.RouterParams()
    out.CopyFrom(params)
    for key in [k for k in out.learned.params if k.startswith("proto")]:
        del out.learned.params[key]
    return out


def test_prototypes_find_separate_groups_and_shrink_small_ones() -> None:

    from switchman_operator.learning.train import (
        PROTOTYPE_PRIOR,
        nearest_prototype,
        prototype_means,
        prototypes,
        sparse_rows,
    )

    rng = random.Random(2)
    group_a = ["alpha", "beta", "gamma", "delta", "epsilon"]
    group_b = ["tea", "coffee", "milk", "sugar", "water"]
    prompts = [
        " ".join(rng.choice(group_a if i % 2 else group_b) for _ in range(6)) for i in range(200)
    ]
    x = sparse_rows(prompts, 1024)
    centroids = prototypes(x, 1024, 2, 64, seed=0)
    assert centroids.shape == (2, 1024)
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0)
    assert ((centroids > 0).sum(axis=1) <= 64).all()
    assign = nearest_prototype(x, centroids)
    # Each group lands on one prototype, a different one per group.
    assert len(set(assign[1::2])) == 1 and len(set(assign[0::2])) == 1
    assert assign[0] != assign[1]
    y = np.array([[float(i % 2), 0.5] for i in range(200)])
    means = prototype_means(assign, y, 2)
    assert means[assign[1], 0] == pytest.approx(
        (100 + PROTOTYPE_PRIOR * 0.5) / (100 + PROTOTYPE_PRIOR)
    )
    assert means[assign[0], 0] == pytest.approx((PROTOTYPE_PRIOR * 0.5) / (100 + PROTOTYPE_PRIOR))
    assert means[:, 1] == pytest.approx([0.5, 0.5])
    # No features at all: the first prototype, as in the sidecar.
    assert nearest_prototype(sparse_rows([""], 1024), centroids).tolist() == [0]


def test_sidecar_prototypes_agree_with_training_and_feedback_still_moves_traffic(
    params: pb.RouterParams,
) -> None:
    from switchman_sidecar.routing.learned import LearnedScorer

    lines = synthetic(400)
    rows = [json.loads(line) for line in lines]
    prompts = [r["prompt"] for r in rows]
    y = [[r["scores"]["cheap"], r["scores"]["strong"]] for r in rows]
    mixed = _with_prototypes(params, prompts, y, 4, 0.5)
    assert load_model(dump_model(mixed)) == mixed
    probes = [MATH, CHAT, "", "coffee", *synthetic_prompts(30)]
    models, expect = predict(mixed, probes)
    _, plain = predict(_without_prototypes(params), probes)
    assert not (abs(expect - plain) < 1e-3).all()  # the prototypes do change the scores
    scorer = LearnedScorer(mixed, {"cheap", "strong"})
    for row, prompt in enumerate(probes):
        kind, indices = scorer.analyze(prompt)
        got = scorer.predict(indices, kind)
        for col, name in enumerate(models):
            assert got[name] == pytest.approx(expect[row, col], abs=1e-6), (prompt, name)
    # Learning from outcomes still takes chat away from a failing cheap model entirely.
    router = Router(learned_table(mixed))
    assert router.decide(RouteRequest("auto", prompt_text=CHAT)).candidates[0] == "cheap"
    current = cheap_fails_chat(mixed)
    after = Router(learned_table(current))
    assert after.decide(RouteRequest("auto", prompt_text=CHAT)).candidates[0] == "strong"


def synthetic_prompts(n: int) -> list[str]:
    return [json.loads(line)["prompt"] for line in synthetic(n, seed=11)]


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("proto/x/p/cheap", 0.5, "malformed"),
        ("proto/0/q/cheap", 0.5, "malformed"),
        ("proto/0/f/99999", 0.5, "out of range"),
        ("proto/0/f/3", float("nan"), "malformed"),
        ("proto/2/p/cheap", 0.5, "numbered"),
        ("prototype_share", 1.5, "prototype_share"),
    ],
)
def test_scorer_refuses_malformed_prototypes(
    params: pb.RouterParams, key: str, value: float, match: str
) -> None:
    bad = _without_prototypes(params)
    bad.learned.params["prototype_share"] = 0.5
    bad.learned.params["proto/0/p/cheap"] = 0.5
    bad.learned.params[key] = value
    with pytest.raises(ValueError, match=match):
        Router(learned_table(bad))


def test_training_picks_prototypes_on_validation_only_when_they_help() -> None:
    settings = TrainSettings(
        dim=256, l2_grid=(1e-3,), epochs=150, prototype_grid=(3,), prototype_share_grid=(0.5,)
    )
    trained = train(parse_examples(synthetic(400)), settings)
    share = trained.learned.params.get("prototype_share", 0.0)
    keys = [k for k in trained.learned.params if k.startswith("proto/")]
    if share:
        assert share == 0.5 and {k.split("/")[1] for k in keys} <= {"0", "1", "2"}
    else:
        assert not keys
    none = train(
        parse_examples(synthetic(400)),
        TrainSettings(dim=256, l2_grid=(1e-3,), epochs=150, prototype_grid=()),
    )
    assert "prototype_share" not in none.learned.params
    assert not [k for k in none.learned.params if k.startswith("proto/")]


def test_sidecar_and_training_pick_the_same_prototype_on_any_weights() -> None:

    from switchman_operator.learning.train import (
        PROTOTYPE_SCALE_BITS,
        SparseRows,
        nearest_prototype,
    )
    from switchman_sidecar.routing.learned import MAX_FEATURES, PROTO_SCALE_BITS, LearnedScorer

    assert PROTOTYPE_SCALE_BITS == PROTO_SCALE_BITS  # one fixed point on both sides

    rng = random.Random(4)
    dim = 1 << 13
    learned = pb.LearnedRouter(featurizer="hash-v1", feature_dim=dim)
    learned.heads.append(pb.ModelHead(model="a", weights=[0.0] * dim, bias=0.0))
    k = 12
    centroids = np.zeros((k, dim))
    for c in range(k):
        for f in rng.sample(range(dim), 300):
            centroids[c, f] = rng.choice([rng.random(), -rng.random() / 10])
    centroids[5] = centroids[2]  # an exact tie: the first one wins on both sides
    learned.params["prototype_share"] = 0.3
    for c in range(k):
        learned.params[f"proto/{c}/p/a"] = 0.5
        for f in np.nonzero(centroids[c])[0]:
            learned.params[f"proto/{c}/f/{f}"] = float(centroids[c, f])
    scorer = LearnedScorer(pb.RouterParams(kind="learned", learned=learned), {"a"})
    for n in (0, 1, 2, 85, 1800, MAX_FEATURES, MAX_FEATURES + 1):
        for _ in range(5):
            indices = sorted(rng.sample(range(dim), n))
            x = SparseRows(
                np.array([0, n]),
                np.array(indices, dtype=np.int64),
                np.full(n, 1.0 / max(n, 1) ** 0.5),
                np.zeros(n, dtype=np.int64),
                1,
            )
            assert scorer.nearest_prototype(set(indices)) == nearest_prototype(x, centroids)[0], n
    assert 5 not in {scorer.nearest_prototype({f}) for f in range(dim)}
