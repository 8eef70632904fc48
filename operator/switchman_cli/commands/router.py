"""``switchman router train|eval|import-llmrouter``: the learned router, offline.

``train`` fits the router on a dataset in the documented JSONL format
(docs/routing.md) and writes the model file a ConfigMap holds; ``eval`` prints
one JSON line comparing its cost-quality curve with the baselines on held-out
data (or, with ``--folds``, cross-validated over a whole dataset);
``import-llmrouter`` converts the LLMRouter reference data into the format
(with an optional seeded held-out split).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switchman_operator.learning import TrainSettings

__all__ = ["register"]


def _prices(args: argparse.Namespace) -> dict[str, tuple[float, float]] | None:
    from switchman_operator.learning import load_prices

    return load_prices(Path(args.prices)) if args.prices else None


def _train_settings(args: argparse.Namespace) -> TrainSettings:
    from switchman_operator.learning import TrainSettings

    grid = tuple(int(k) for k in args.prototypes.split(",") if k.strip())
    return TrainSettings(
        dim=args.dim, seed=args.train_seed, calibrate=args.calibrate, prototype_grid=grid
    )


def _train(args: argparse.Namespace) -> int:
    from switchman_operator.learning import load_examples, model_bytes, train
    from switchman_operator.learning.train import CONFIGMAP_LIMIT

    try:
        examples = load_examples(Path(args.data), _prices(args))
        started = time.monotonic()
        params = train(examples, _train_settings(args))
    except (OSError, ValueError) as exc:
        print(f"switchman router train: {exc}", file=sys.stderr)
        return 1
    params.source = f"file {Path(args.data).name}"
    blob = model_bytes(params, gzipped=args.out.endswith(".gz"))
    Path(args.out).write_bytes(blob)
    if len(blob) > CONFIGMAP_LIMIT:
        hint = "a smaller --dim" if args.out.endswith(".gz") else "--out NAME.json.gz"
        print(
            f"switchman router train: warning: {args.out} is {len(blob)} bytes, more than "
            f"a ConfigMap holds ({CONFIGMAP_LIMIT}); use {hint}",
            file=sys.stderr,
        )
    summary = {
        "model": args.out,
        "examples": len(examples),
        "models": [h.model for h in params.learned.heads],
        "feature_dim": params.learned.feature_dim,
        "l2": params.learned.params["l2"],
        "neighbour_blend": params.learned.params["neighbour_blend"],
        "prototypes": len(
            {k.split("/")[1] for k in params.learned.params if k.startswith("proto/")}
        ),
        "prototype_share": params.learned.params.get("prototype_share", 0.0),
        "bytes": len(blob),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from switchman_operator.learning import load_examples, read_model_file
    from switchman_operator.learning.evaluate import EvalSettings, cross_validate, evaluate

    if (args.model is None) == (args.folds is None):
        print(
            "switchman router eval: give --model, or --folds K to train one per fold",
            file=sys.stderr,
        )
        return 2
    try:
        prices = _prices(args)
        examples = load_examples(Path(args.data), prices)
        settings = EvalSettings(
            knn_k=args.knn_k, bootstrap=args.bootstrap, bootstrap_seed=args.seed
        )
        if args.folds is not None:
            if args.train:
                raise ValueError("--train is for --model; with --folds the other folds train")
            result = cross_validate(
                examples,
                args.folds,
                _train_settings(args),
                settings,
                seed=args.seed,
                jobs=args.jobs,
                progress=lambda line: print(f"switchman router eval: {line}", file=sys.stderr),
            )
            source = {"data": args.data}
        else:
            params = read_model_file(Path(args.model))
            train_examples = load_examples(Path(args.train), prices) if args.train else None
            missing = set(examples[0].scores) - {h.model for h in params.learned.heads}
            if missing:
                raise ValueError(f"the model has no head for {sorted(missing)}")
            result = evaluate(params, examples, train_examples, settings)
            source = {"data": args.data, "model": args.model}
    except (OSError, ValueError) as exc:
        print(f"switchman router eval: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({**source, **result}, separators=(",", ":")))
    return 0


def _train_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dim", type=int, default=4096, help="hashed feature buckets")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="per-model Platt scaling fitted on the validation split (off by default)",
    )
    parser.add_argument(
        "--prototypes",
        default="16,32",
        help="candidate prototype counts, chosen on the validation split with their share "
        "(comma-separated; 0 = none: the sidecar's cheapest decision)",
    )


def _import_llmrouter(args: argparse.Namespace) -> int:
    from switchman_operator.learning import from_llmrouter
    from switchman_operator.learning.dataset import split_rows

    try:
        rows = from_llmrouter(Path(args.src))
    except (OSError, ValueError, KeyError) as exc:
        print(f"switchman router import-llmrouter: {exc}", file=sys.stderr)
        return 1
    train_rows, test_rows = split_rows(rows, args.test_share if args.test_out else 0.0, args.seed)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    if args.test_out:
        Path(args.test_out).write_text("".join(json.dumps(r) + "\n" for r in test_rows))
    print(json.dumps({"train": len(train_rows), "test": len(test_rows)}))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("router", help="train and evaluate the learned router")
    cmds = parser.add_subparsers(dest="router_command", metavar="SUBCOMMAND")

    train = cmds.add_parser("train", help="train a router model from a JSONL dataset")
    train.add_argument("--data", required=True, help="dataset (JSONL, docs/routing.md)")
    train.add_argument(
        "--out", required=True, help="model file to write (JSON; gzipped when it ends in .gz)"
    )
    train.add_argument("--prices", help="prices JSON for lines that give token counts")
    train.add_argument("--seed", type=int, default=0, dest="train_seed")
    _train_options(train)
    train.set_defaults(handler=_train)

    ev = cmds.add_parser("eval", help="cost-quality curve vs baselines, one JSON line")
    ev.add_argument(
        "--data", required=True, help="held-out dataset (JSONL); with --folds, all of it"
    )
    ev.add_argument("--model", help="model file from `router train` (JSON or .gz)")
    ev.add_argument("--train", help="training dataset for the nearest-neighbour baseline")
    ev.add_argument(
        "--folds",
        type=int,
        help="cross-validate instead: train a router on each K-1 folds of --data (with the "
        "training options below) and evaluate every prompt by the one that left it out",
    )
    ev.add_argument("--jobs", type=int, default=1, help="folds trained at once (--folds)")
    ev.add_argument("--prices", help="prices JSON for lines that give token counts")
    ev.add_argument("--knn-k", type=int, default=10)
    ev.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="paired resamples of the evaluation prompts: how often the router is better "
        "than each baseline (0 = skip)",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the resamples and the folds")
    ev.add_argument(
        "--train-seed", type=int, default=0, help="seed of each fold's training (--folds)"
    )
    _train_options(ev)
    ev.set_defaults(handler=_eval)

    imp = cmds.add_parser("import-llmrouter", help="convert LLMRouter data to the JSONL format")
    imp.add_argument("--src", required=True, help="folder with dcrouter_train.json etc.")
    imp.add_argument("--out", required=True, help="JSONL to write (training part)")
    imp.add_argument("--test-out", help="JSONL for a held-out part")
    imp.add_argument("--test-share", type=float, default=0.2)
    imp.add_argument("--seed", type=int, default=0)
    imp.set_defaults(handler=_import_llmrouter)

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(handler=usage)
