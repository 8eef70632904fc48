"""The shared featurizer: deterministic across processes, bounded, classifies tasks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from switchman_protocol.featurize import analyze, analyze_set, featurize_text, task_kind

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


def _reference_hash_v1(text: str, dim: int) -> tuple[str, list[int]]:
    """hash-v1 as first written (whole prompt encoded, bigrams hashed on full CRCs).

    The fast path (only the ends encoded, masked operands) must give exactly this:
    a trained router depends on every index.
    """
    import itertools
    import re
    import zlib

    from switchman_protocol import featurize

    raw = text.encode("utf-8", "replace").lower()
    if len(raw) > featurize.HEAD_CHARS + featurize.TAIL_CHARS:
        raw = raw[: featurize.HEAD_CHARS] + b"\n" + raw[-featurize.TAIL_CHARS :]
    tokens = re.findall(rb"[a-z]+|[0-9]+|[^\sa-z0-9]", raw)
    kind = task_kind(text)
    crcs = [zlib.crc32(t) for t in tokens]
    mask = dim - 1
    feats = {c & mask for c in crcs}
    feats |= {((a * 0x9E3779B1) ^ b) & mask for a, b in itertools.pairwise(crcs)}
    digits = sum(t.isdigit() for t in tokens)
    shape = [
        b"len=%d" % (len(text) // 16).bit_length(),
        b"num=%d" % digits.bit_length(),
        b"lines=%d" % text.count("\n").bit_length(),
        b"fence=%d" % (b"```" in raw),
        b"task=" + kind.encode(),
    ]
    feats |= {zlib.crc32(s, 0x5EED) & mask for s in shape}
    return kind, sorted(feats)


def test_fast_featurizer_equals_the_reference_definition() -> None:
    import random

    rng = random.Random(7)
    prompts = [
        "",
        "x",
        PROMPT,
        "é" * 1000,  # 2 bytes per character: the byte cut falls mid-character
        "日本語のテキスト" * 200,
        "a\ud800b" * 400,  # lone surrogates are replaced
        "Solve $$x^2$$ and \\frac{1}{2} " * 80,
        "\n" * 3000,
        "A" * 5000 + "?",
    ]
    alphabet = [chr(c) for c in range(1, 0x2FFF, 7)] + list("abc xyz 0123 ,.?!\n\t")
    prompts += [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 2500))) for _ in range(60)
    ]
    for prompt in prompts:
        for dim in (2, 256, 4096, 1 << 20):
            assert analyze(prompt, dim) == _reference_hash_v1(prompt, dim), prompt[:40]
            kind, indices = analyze(prompt, dim)
            assert analyze_set(prompt, dim) == (kind, set(indices))


@pytest.mark.parametrize(
    "prompt",
    [
        "plain text with no marker at all",
        "use \\frac{1}{2} then def f(): pass",  # math marker first, code marker later
        "def f(): return \\sqrt{2}",
        "\\()",  # a math marker overlapping a code marker
        "$$ x $$",
        "#include <stdio.h>",
        "Write a Python script",
        "costs $$ and ()",
    ],
)
def test_decisive_markers_pick_the_kind_the_per_kind_scan_picks(prompt: str) -> None:
    from switchman_protocol import featurize

    raw = prompt.lower().encode()
    expected = next(
        (kind for kind, markers in featurize._DECISIVE.items() if any(m in raw for m in markers)),
        None,
    )
    got = featurize._kind(raw, featurize._TOKEN.findall(raw), 0)
    assert got == (expected or "chat")
