"""Router decision time in the sidecar, per router kind: one JSON line.

* ``pinned``: the client names a model (alias resolution + fallback chain);
* ``rules``: five CEL rules (headers, budget, task, PII, time) then the cost strategy;
* ``strategy``: ``auto`` with the balanced strategy over 9 models (task classifier on);
* ``learned``: ``auto`` with a learned router over 9 models (featurizer + 9 heads of
  4096 weights), with output-budget planning off and on;
* ``learned+prototypes``: the same plus 32 prototypes of 64 features each (what
  ``router train`` adds when they win on validation): 32 more fields in the
  packed gather and the nearest prototype's vote.

Prompts come from the LLMRouter reference data when present (real length mix),
otherwise from a fixed synthetic set. Run: ``.venv/bin/python tests/bench/bench_router.py``.

``native`` says whether the compiled featurizer, scorer and ranking
(``switchman_native``) served the run; without it the Python reference does.

``--breakdown`` prints a second line: where a learned decision's time goes, in the
same process and the same way (every prompt once per round): the featurizer
(hash-v1 features + task kind), the scorer (9 heads), the rest of ``decide``
(selection, fallbacks, explanation) as the difference of the p50s; plus the
task classifier alone (what ``strategy`` pays) and the CEL rule matching of the
``rules`` table.
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from switchman_protocol import featurize
from switchman_protocol.v1 import routes_pb2 as pb
from switchman_sidecar.routing import BudgetView, Router, RouteRequest

DATA = Path(__file__).resolve().parents[2].parent / "shared/data/routing/llmrouter"
MODELS = [f"m{i}" for i in range(9)]
DIM = 4096
PROTOTYPES = 32


def prompts(n: int) -> list[str]:
    path = DATA / "default_query_train.jsonl"
    if path.exists():
        rows = [json.loads(line)["query"] for line in path.open()]
        random.Random(0).shuffle(rows)
        return rows[:n]
    base = [
        "What is the capital of France?",
        "Write a python function that merges two sorted lists.",
        "Solve for x: 3x + 7 = 22. Show your work.",
        "Summarize the following paragraph in one sentence: " + "lorem ipsum " * 40,
    ]
    return [base[i % len(base)] + f" ({i})" for i in range(n)]


def table(kind: str) -> pb.RouteTable:
    t = pb.RouteTable(team="bench", default_strategy=pb.STRATEGY_BALANCED, quality_bar=0.6)
    for i, name in enumerate(MODELS):
        t.models.append(
            pb.Model(
                name=name,
                provider=pb.PROVIDER_OPENAI,
                endpoint="http://127.0.0.1:1/v1",
                price=pb.Price(input_per_mtok=0.1 * (i + 1), output_per_mtok=0.4 * (i + 1)),
                quality=pb.Quality(overall=0.5 + 0.05 * i, by_task={"code": 0.4 + 0.06 * i}),
                capabilities=["tools", "json"],
            )
        )
    t.aliases["best"] = "m8"
    t.fallbacks.append(pb.FallbackChain(model="m8", fallbacks=["m7", "m6"]))
    if kind == "rules":
        t.default_strategy = pb.STRATEGY_COST
        t.rules.extend(
            [
                pb.Rule(
                    name="premium", when='request.headers["x-tier"] == "premium"', route_to="best"
                ),
                pb.Rule(name="budget", when="budget.percentUsed > 90.0", strategy=pb.STRATEGY_COST),
                pb.Rule(name="ssn", when='"US_SSN" in pii', allowed_models=["m0"]),
                pb.Rule(name="night", when="time.hour >= 23", strategy=pb.STRATEGY_COST),
                pb.Rule(name="code", when='task == "code"', strategy=pb.STRATEGY_QUALITY),
            ]
        )
    if kind.startswith("learned"):
        rng = random.Random(1)
        learned = pb.LearnedRouter(featurizer=featurize.FEATURIZER, feature_dim=DIM)
        for name in MODELS:
            learned.heads.append(
                pb.ModelHead(
                    model=name,
                    weights=[rng.gauss(0, 0.3) for _ in range(DIM)],
                    bias=rng.gauss(0, 0.5),
                    mean_output_tokens=200.0,
                )
            )
        if kind == "learned+prototypes":
            learned.params["prototype_share"] = 0.5
            for c in range(PROTOTYPES):
                for f in rng.sample(range(DIM), 64):
                    learned.params[f"proto/{c}/f/{f}"] = rng.random() / 8
                for name in MODELS:
                    learned.params[f"proto/{c}/p/{name}"] = rng.random()
        t.router.CopyFrom(pb.RouterParams(kind="learned", cost_weight=0.3, learned=learned))
        if kind == "learned+budget":
            t.output_budget.CopyFrom(pb.OutputBudget(enabled=True, choices=[256, 1024, 4096]))
    return t


def measure(router: Router, requests: list[RouteRequest], rounds: int) -> dict[str, float]:
    for r in requests[:200]:
        router.decide(r)  # warm-up
    samples = []
    round_p50 = []
    cpu: list[int] = []
    gc.disable()
    try:
        for _ in range(rounds):
            this = []
            for r in requests:
                t0 = time.perf_counter_ns()
                router.decide(r)
                this.append(time.perf_counter_ns() - t0)
            samples.extend(this)
            round_p50.append(sorted(this)[len(this) // 2])
        for r in requests:
            # CPU time of this thread: excludes time the scheduler gave to other processes
            # (includes ~0.5 us for the clock call itself).
            c0 = time.thread_time_ns()
            router.decide(r)
            cpu.append(time.thread_time_ns() - c0)
    finally:
        gc.enable()
    samples.sort()
    return {
        "p50_us": round(samples[len(samples) // 2] / 1000, 1),
        "p99_us": round(samples[int(len(samples) * 0.99)] / 1000, 1),
        "mean_us": round(statistics.fmean(samples) / 1000, 1),
        # On a shared machine the quietest round says most about the code itself.
        "p50_best_round_us": round(min(round_p50) / 1000, 1),
        "cpu_p50_us": round(sorted(cpu)[len(cpu) // 2] / 1000, 1),
    }


def breakdown(texts: list[str], requests: list[RouteRequest], rounds: int) -> dict[str, object]:
    """p50 (us) of each part of a learned decision; the parts take turns, round by round."""
    from switchman_sidecar.routing.rules import match_rule

    learned = Router(table("learned"))
    rules = Router(table("rules"))
    scorer = learned._scorer
    assert scorer is not None
    analyses = [scorer.analyze(t) for t in texts]
    parts: dict[str, Callable[[int], object]] = {
        "decide": lambda i: learned.decide(requests[i]),
        "featurize": lambda i: scorer.analyze(texts[i]),
        "predict": lambda i: scorer.predict_list(analyses[i][1], analyses[i][0]),
        "task_kind": lambda i: featurize.task_kind(texts[i]),
        "rules_cel_match": lambda i: match_rule(
            rules._rules, requests[i], lambda: analyses[i][0], rules._fields
        ),
    }
    samples: dict[str, list[int]] = {name: [] for name in parts}
    gc.disable()
    try:
        for _ in range(rounds):
            for name, part in parts.items():  # each part over all prompts, as the bench does
                for i in range(len(texts)):
                    t0 = time.perf_counter_ns()
                    part(i)
                    samples[name].append(time.perf_counter_ns() - t0)
    finally:
        gc.enable()
    p50 = {name: sorted(v)[len(v) // 2] / 1000 for name, v in samples.items()}
    out: dict[str, object] = {f"{name}_p50_us": round(v, 1) for name, v in p50.items()}
    out["rest_p50_us"] = round(p50["decide"] - p50["featurize"] - p50["predict"], 1)
    return out


def main() -> None:
    texts = prompts(1000)
    headers = {
        "content-type": "application/json",
        "user-agent": "OpenAI/Python 1.60",
        "x-tier": "free",
    }

    def reqs(model: str) -> list[RouteRequest]:
        return [
            RouteRequest(
                model=model,
                headers=headers,
                prompt_text=t,
                input_tokens=len(t) // 4,
                budget=BudgetView("Ok", 42.0),
            )
            for t in texts
        ]

    result: dict[str, object] = {
        "bench": "router_decide",
        "prompts": len(texts),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "native": featurize.NATIVE,
    }
    result["pinned"] = measure(Router(table("pinned")), reqs("best"), 5)
    result["rules"] = measure(Router(table("rules")), reqs("auto"), 5)
    result["strategy"] = measure(Router(table("strategy")), reqs("auto"), 5)
    result["learned"] = measure(Router(table("learned")), reqs("auto"), 5)
    result["learned+budget"] = measure(Router(table("learned+budget")), reqs("auto"), 5)
    result["learned+prototypes"] = measure(Router(table("learned+prototypes")), reqs("auto"), 5)
    lengths = sorted(len(t) for t in texts)
    result["prompt_chars_p50"] = lengths[len(lengths) // 2]
    print(json.dumps(result))
    if "--breakdown" in sys.argv[1:]:
        parts = breakdown(texts, reqs("auto"), 5)
        print(json.dumps({"bench": "router_decide_breakdown", "kind": "learned", **parts}))


if __name__ == "__main__":
    main()
