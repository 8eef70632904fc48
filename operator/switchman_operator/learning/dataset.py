"""The router dataset format (JSONL), its reader, and the LLMRouter adapter.

One JSON object per line, dataset-agnostic (see docs/routing.md):

    {"prompt": "...",
     "scores": {"model-a": 1.0, "model-b": 0.0},          # 0..1, higher is better
     "costs": {"model-a": 0.0031, "model-b": 0.0002},      # USD for this prompt, or
     "tokens": {"model-a": {"input": 812, "output": 120}}, # token counts (needs prices)
     "task": "math",                                        # optional label, reporting only
     "id": "..."}                                           # optional

Costs come from ``costs`` when a line has them, otherwise from ``tokens`` and
a prices file (``{"model": {"input_per_mtok": .., "output_per_mtok": ..}}``).
Every line must score the same set of models.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LLMROUTER_OUTPUT_TOKENS",
    "Example",
    "Prices",
    "from_llmrouter",
    "load_examples",
    "load_prices",
    "parse_examples",
    "split",
    "split_rows",
]

Prices = dict[str, tuple[float, float]]
"""model → (input, output) USD per million tokens."""


@dataclass(frozen=True, slots=True)
class Example:
    prompt: str
    scores: dict[str, float]
    costs: dict[str, float]
    task: str = ""
    id: str = ""
    output_tokens: dict[str, float] | None = None
    """Output tokens per model when the dataset has them (typical answer lengths)."""


class DatasetError(ValueError):
    """A line of the dataset is malformed; the message names the line."""


def load_prices(path: Path) -> Prices:
    data = json.loads(path.read_text())
    out: Prices = {}
    for model, p in data.items():
        out[model] = (
            float(p.get("input_per_mtok", p.get("input_price", 0.0))),
            float(p.get("output_per_mtok", p.get("output_price", 0.0))),
        )
    return out


def _cost(line: int, model: str, obj: Mapping[str, Any], prices: Prices | None) -> float:
    costs = obj.get("costs")
    if isinstance(costs, Mapping) and model in costs:
        return float(costs[model])
    tokens = obj.get("tokens")
    if isinstance(tokens, Mapping) and model in tokens:
        if prices is None or model not in prices:
            raise DatasetError(f"line {line}: token counts for {model!r} but no price for it")
        t = tokens[model]
        pin, pout = prices[model]
        return (float(t.get("input", 0)) * pin + float(t.get("output", 0)) * pout) / 1e6
    raise DatasetError(f"line {line}: no cost or token counts for model {model!r}")


def parse_examples(lines: Iterable[str], prices: Prices | None = None) -> list[Example]:
    out: list[Example] = []
    models: set[str] | None = None
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"line {n}: not JSON: {exc}") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
            raise DatasetError(f"line {n}: needs a string 'prompt'")
        scores = obj.get("scores")
        if not isinstance(scores, dict) or not scores:
            raise DatasetError(f"line {n}: needs 'scores': {{model: 0..1}}")
        if models is None:
            models = set(scores)
        elif set(scores) != models:
            raise DatasetError(
                f"line {n}: scores models {sorted(scores)}, expected {sorted(models)}"
            )
        clean = {}
        for model, value in scores.items():
            score = float(value)
            if not 0.0 <= score <= 1.0:
                raise DatasetError(f"line {n}: score of {model!r} is {score}, outside 0..1")
            clean[model] = score
        costs = {m: _cost(n, m, obj, prices) for m in clean}
        tokens = obj.get("tokens")
        outputs = None
        if isinstance(tokens, dict):
            outputs = {
                m: float(t["output"])
                for m, t in tokens.items()
                if isinstance(t, dict) and isinstance(t.get("output"), (int, float))
            }
        out.append(
            Example(
                obj["prompt"],
                clean,
                costs,
                str(obj.get("task", "")),
                str(obj.get("id", "")),
                outputs or None,
            )
        )
    if not out:
        raise DatasetError("the dataset has no examples")
    return out


def load_examples(path: Path, prices: Prices | None = None) -> list[Example]:
    with path.open() as fh:
        return parse_examples(fh, prices)


def split(
    examples: list[Example], test_share: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """A seeded random split (train, test)."""
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    cut = round(len(order) * (1 - test_share))
    return [examples[i] for i in order[:cut]], [examples[i] for i in order[cut:]]


#: LLMRouter has no token counts; typical answer lengths per task (tokens) stand in.
LLMROUTER_OUTPUT_TOKENS = {
    "math": 320,
    "gsm8k": 256,
    "agentverse-mgsm": 256,
    "mbpp": 192,
    "human_eval": 192,
    "agentverse-logicgrid": 160,
    "commongen": 48,
    "natural_qa": 24,
    "trivia_qa": 24,
}
LLMROUTER_DEFAULT_OUTPUT = 16  # multiple choice: a letter and a short justification


def from_llmrouter(folder: Path) -> list[dict[str, Any]]:
    """LLMRouter's files → lines of our format (input tokens ≈ characters / 4)."""
    prices = load_prices(folder / "default_llm.json")
    tasks: dict[str, str] = {}
    with (folder / "default_query_train.jsonl").open() as fh:
        for text in fh:
            row = json.loads(text)
            tasks[row["query"]] = row["task_name"]
    rows = json.loads((folder / "dcrouter_train.json").read_text())
    out = []
    for i, row in enumerate(rows):
        prompt = row["question"]
        task = tasks.get(prompt, "")
        in_tokens = max(1, len(prompt) // 4)
        out_tokens = LLMROUTER_OUTPUT_TOKENS.get(task, LLMROUTER_DEFAULT_OUTPUT)
        out.append(
            {
                "id": f"llmrouter-{i}",
                "prompt": prompt,
                "task": task,
                "scores": row["scores"],
                "tokens": {m: {"input": in_tokens, "output": out_tokens} for m in row["scores"]},
                "costs": {
                    m: (in_tokens * prices[m][0] + out_tokens * prices[m][1]) / 1e6
                    for m in row["scores"]
                },
            }
        )
    return out


def split_rows(
    rows: list[dict[str, Any]], test_share: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The same seeded split as ``split``, over raw lines."""
    import random

    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    cut = round(len(order) * (1 - test_share))
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]
