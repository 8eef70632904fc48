"""Cascade confidence checks (FrugalGPT): is the cheap model's answer good enough?

Pure functions, so the pipeline (which runs the cascade: try the cheap model,
check, escalate) and the tests share them. Each check returns a ``Check``
with a confidence in [0, 1]; the answer is accepted when ``confidence >=
threshold``. The self-check and verifier checks need one more model call: the
pipeline sends ``verification_messages(...)`` to the same model (self_check)
or to the verifier model and feeds the reply to ``parse_confidence``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHECKS",
    "Check",
    "check_json",
    "check_logprobs",
    "logprobs_of",
    "parse_confidence",
    "verification_messages",
]

CHECKS = ("json", "logprob", "self_check", "verifier")
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?```\s*$", re.DOTALL)
_NUMBER = re.compile(r"(?<![\w.])(0(?:\.\d+)?|1(?:\.0+)?|\.\d+)(?![\w.])")
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")


@dataclass(frozen=True, slots=True)
class Check:
    confidence: float
    detail: str

    def passes(self, threshold: float) -> bool:
        return self.confidence >= threshold


def check_json(text: str) -> Check:
    """Structural: the answer is one JSON value (a fenced block is unwrapped)."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        json.loads(body)
    except ValueError as exc:
        return Check(0.0, f"not valid JSON: {exc}")
    return Check(1.0, "valid JSON")


def logprobs_of(choice: dict[str, Any]) -> list[float]:
    """Token log-probabilities of an OpenAI chat choice (``logprobs.content[].logprob``)."""
    content = (choice.get("logprobs") or {}).get("content") or []
    return [float(t["logprob"]) for t in content if isinstance(t, dict) and "logprob" in t]


def check_logprobs(logprobs: Sequence[float]) -> Check:
    """Confidence = geometric mean token probability (exp of the mean log-prob)."""
    if not logprobs:
        return Check(0.0, "no log-probabilities in the answer")
    mean = sum(logprobs) / len(logprobs)
    return Check(math.exp(mean), f"mean logprob {mean:.3f} over {len(logprobs)} tokens")


def verification_messages(question: str, answer: str) -> list[dict[str, str]]:
    """The prompt for a self-check or a verifier model."""
    return [
        {
            "role": "system",
            "content": "You grade answers. Reply with only a number between 0 and 1: "
            "the probability that the answer is correct and complete.",
        },
        {"role": "user", "content": f"Question:\n{question}\n\nAnswer:\n{answer}"},
    ]


def parse_confidence(reply: str) -> Check:
    """A grader's reply → confidence. Unparseable replies count as no confidence."""
    text = reply.strip().lower()
    if text.startswith(("yes", "correct", "true")):
        return Check(1.0, "grader said yes")
    if text.startswith(("no", "incorrect", "false", "wrong")):
        return Check(0.0, "grader said no")
    pct = _PERCENT.search(text)
    if pct:
        return Check(min(1.0, float(pct.group(1)) / 100.0), f"grader said {pct.group(0)}")
    num = _NUMBER.search(text)
    if num:
        return Check(float(num.group(1)), f"grader said {num.group(1)}")
    return Check(0.0, "grader reply had no confidence")
