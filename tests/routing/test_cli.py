"""``switchman router train|eval`` and ``switchman route explain`` end to end (in-process)."""

from __future__ import annotations

import gzip
import importlib
import json
import random
from pathlib import Path

import pytest
import yaml

from switchman_cli.__main__ import main

TABLE = {
    "team": "checkout",
    "models": [
        {
            "name": "cheap",
            "provider": "PROVIDER_OPENAI",
            "endpoint": "http://127.0.0.1:1/v1",
            "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.4},
            "quality": {"overall": 0.7, "by_task": {"code": 0.4}},
        },
        {
            "name": "strong",
            "provider": "PROVIDER_OPENAI",
            "endpoint": "http://127.0.0.1:1/v1",
            "price": {"input_per_mtok": 5.0, "output_per_mtok": 20.0},
            "quality": {"overall": 0.9},
        },
    ],
    "aliases": {"best": "strong"},
    "default_strategy": "STRATEGY_COST",
    "quality_bar": 0.6,
    "rules": [
        {"name": "premium", "when": 'request.headers["x-tier"] == "premium"', "route_to": "best"},
        {"name": "blocked", "when": '"US_SSN" in pii', "reject": "no SSNs"},
    ],
}


def write_dataset(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(n):
            hard = i % 2 == 1
            prompt = (
                f"Prove that {rng.randint(2, 50)} squared minus one is composite, step by step"
                if hard
                else f"say hello to {rng.choice(['ann', 'bob', 'cy', 'dee'])} nicely"
            )
            scores = {
                "cheap": float(rng.random() < (0.1 if hard else 0.9)),
                "strong": float(rng.random() < 0.9),
            }
            tokens = {m: {"input": 20, "output": 100} for m in scores}
            fh.write(json.dumps({"prompt": prompt, "scores": scores, "tokens": tokens}) + "\n")


def test_train_then_eval_prints_one_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "cheap": {"input_per_mtok": 0.1, "output_per_mtok": 0.4},
                "strong": {"input_per_mtok": 5, "output_per_mtok": 20},
            }
        )
    )
    write_dataset(tmp_path / "train.jsonl", 300, 1)
    write_dataset(tmp_path / "test.jsonl", 120, 2)
    model = tmp_path / "router.json"
    args = ["--prices", str(prices)]
    assert (
        main(
            [
                "router",
                "train",
                "--data",
                str(tmp_path / "train.jsonl"),
                "--out",
                str(model),
                "--dim",
                "256",
                *args,
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["examples"] == 300 and summary["bytes"] == model.stat().st_size
    # Gzipped when the name says so; eval and route explain read either.
    packed = tmp_path / "router.json.gz"
    train_args = ["--data", str(tmp_path / "train.jsonl"), "--dim", "256", *args]
    assert main(["router", "train", *train_args, "--out", str(packed)]) == 0
    assert json.loads(capsys.readouterr().out)["bytes"] == packed.stat().st_size
    assert packed.read_bytes()[:2] == b"\x1f\x8b" and gzip.decompress(packed.read_bytes()) == (
        model.read_bytes()
    )
    # Over what a ConfigMap holds: written all the same, with a warning naming the way out.
    train_module = importlib.import_module("switchman_operator.learning.train")
    monkeypatch.setattr(train_module, "CONFIGMAP_LIMIT", 1000)
    big = tmp_path / "big.json"
    assert main(["router", "train", *train_args, "--out", str(big)]) == 0
    assert "use --out NAME.json.gz" in capsys.readouterr().err and big.exists()
    assert main(["router", "train", *train_args, "--out", str(big) + ".gz"]) == 0
    assert "use a smaller --dim" in capsys.readouterr().err
    monkeypatch.undo()
    # --prototypes 0: a model without prototypes (the cheapest decision in the sidecar).
    plain = tmp_path / "plain.json"
    assert main(["router", "train", *train_args, "--out", str(plain), "--prototypes", "0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["prototypes"] == 0 and summary["prototype_share"] == 0.0
    assert "proto/" not in plain.read_text()
    assert main(["router", "train", *train_args, "--out", str(plain), "--prototypes", "x"]) == 1
    assert "invalid literal" in capsys.readouterr().err
    assert (
        main(
            ["router", "eval", "--data", str(tmp_path / "test.jsonl"), "--model", str(model), *args]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    result = json.loads(out)
    assert set(result["baselines"]) == {
        "always_strongest",
        "always_cheapest",
        "random_matched_cost",
        "nearest_neighbour",
    }
    assert result["router"]["curve"] and result["router"]["cost_at_95pct"] is not None
    boot = result["bootstrap"]
    assert boot["resamples"] == 1000 and set(boot["router_better_share"]) == set(
        result["baselines"]
    )
    eval_args = ["--data", str(tmp_path / "test.jsonl"), "--model", str(model), *args]
    assert main(["router", "eval", *eval_args, "--bootstrap", "0"]) == 0
    from_plain = json.loads(capsys.readouterr().out)
    assert "bootstrap" not in from_plain
    gz_args = ["--data", str(tmp_path / "test.jsonl"), "--model", str(packed), *args]
    assert main(["router", "eval", *gz_args, "--bootstrap", "0"]) == 0
    from_gz = json.loads(capsys.readouterr().out)
    assert from_gz.pop("model") == str(packed) and from_plain.pop("model") == str(model)
    assert from_gz == from_plain
    # A dataset with token counts but no prices is refused with a clear message.
    assert (
        main(["router", "eval", "--data", str(tmp_path / "test.jsonl"), "--model", str(model)]) == 1
    )
    assert "no price" in capsys.readouterr().err
    # Cross-validated: no model file, a router per fold, every prompt predicted once.
    cv_args = ["--data", str(tmp_path / "train.jsonl"), "--dim", "256", "--bootstrap", "0"]
    assert main(["router", "eval", *cv_args, *args, "--folds", "3", "--prototypes", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 300 and result["folds"] == 3 and "model" not in result
    assert sum(fold["examples"] for fold in result["per_fold"]) == 300
    assert main(["router", "eval", *eval_args, "--folds", "3"]) == 2  # --model or --folds
    assert "give --model, or --folds" in capsys.readouterr().err
    assert main(["router", "eval", *cv_args, *args, "--folds", "1"]) == 1
    assert "folds must be between 2" in capsys.readouterr().err

    # route explain with the trained model as the table's router.
    table = tmp_path / "table.yaml"
    table.write_text(yaml.safe_dump(TABLE))
    assert (
        main(
            [
                "route",
                "explain",
                "--table",
                str(table),
                "--router-model",
                str(model),
                "--prompt",
                "say hello to bob nicely",
            ]
        )
        == 0
    )
    easy = json.loads(capsys.readouterr().out)
    assert easy["model"] == "cheap" and easy["reason"] == "router" and easy["score"] > 0.6
    assert (
        main(
            [
                "route",
                "explain",
                "--table",
                str(table),
                "--router-model",
                str(model),
                "--prompt",
                "Prove that 17 squared minus one is composite, step by step",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["model"] == "strong"


def test_route_explain_rules_and_strategy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "table.yaml"
    table.write_text(yaml.safe_dump(TABLE))
    base = ["route", "explain", "--table", str(table)]
    assert main([*base, "--header", "x-tier=premium", "--model", "cheap"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["model"], out["rule"], out["reason"]) == ("strong", "premium", "rule:premium")
    assert any("premium matched" in why for why in out["why"])
    assert main([*base, "--pii", "US_SSN"]) == 0
    assert json.loads(capsys.readouterr().out)["reject"] == "no SSNs"
    assert main([*base, "--prompt", "Write a python function to parse dates"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "strong" and out["task_kind"] == "code"
    assert out["reason"] == "strategy:cost"
    assert main([*base, "--header", "novalue"]) == 1
    assert "key=value" in capsys.readouterr().err
    bad = dict(TABLE, rules=[{"name": "x", "when": "request.model ==", "route_to": "cheap"}])
    table.write_text(yaml.safe_dump(bad))
    assert main(base) == 1
    assert "does not compile" in capsys.readouterr().err
