"""The shared featurizer: deterministic across processes, bounded, classifies tasks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from switchman_protocol.featurize import analyze, featurize_text, task_kind

PROMPT = "Write a Python function that returns the 10th Fibonacci number.\n```py\n```"


def test_same_features_in_another_process_with_another_hash_seed() -> None:
    code = (
        "from switchman_protocol.featurize import featurize_text;"
        f"print(featurize_text({PROMPT!r}, 1024))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == str(featurize_text(PROMPT, 1024))


def test_indices_sorted_unique_in_range() -> None:
    kind, idx = analyze(PROMPT * 50, 256)
    assert kind == "code"
    assert idx == sorted(set(idx)) and all(0 <= i < 256 for i in idx)
    # Bounded work: a huge prompt yields no more features than head + tail allow.
    assert len(analyze("word " * 100_000, 4096)[1]) < 10
    with pytest.raises(ValueError, match="power of two"):
        featurize_text("x", 1000)


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        ("Write a python function to reverse a list", "code"),
        ("def f(x):\n    return x", "code"),
        ("Solve for x: 3x + 2 = 11", "math"),
        ("Extract the name and email as JSON from this signature", "extraction"),
        ("Summarize this article in three bullet points", "summarization"),
        ("Translate to French: good morning", "translation"),
        ("Classify the sentiment of this review", "classification"),
        ("Who wrote War and Peace?", "qa"),
        ("hey, how is your day going", "chat"),
    ],
)
def test_task_kinds(prompt: str, kind: str) -> None:
    assert task_kind(prompt) == kind
