"""The compiled hash-v1 featurizer (switchman_native) gives exactly what the Python
reference gives: the task kind and every feature index, on every string of the
shared routing data and on generated text (unicode, lone surrogates, empty, huge,
cuts inside multi-byte characters, every dimension from 2 to 2^70).

These tests import switchman_native directly: a test venv without the compiled
module fails here instead of quietly testing the Python code twice.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from switchman_native import _native

from switchman_protocol import featurize

DATA = Path(__file__).resolve().parents[2].parent / "shared/data/routing/llmrouter"
DIMS = [1 << k for k in range(1, 21)] + [1 << 32, 1 << 33, 1 << 63, 1 << 64, 1 << 70]


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def shared_texts() -> list[str]:
    """Every string of ../shared/data/routing/llmrouter/*.json* (prompts, answers, names)."""
    paths = sorted(DATA.glob("*.json*"))
    assert paths, f"the shared routing data is missing: {DATA}"
    out: list[str] = []
    for path in paths:
        with path.open(encoding="utf-8") as f:
            if path.suffix == ".jsonl":
                for line in f:
                    out.extend(_strings(json.loads(line)))
            else:
                out.extend(_strings(json.load(f)))
    return out


def generated_texts(seed: int = 11, count: int = 400) -> list[str]:
    rng = random.Random(seed)
    words = [
        "def",
        "python",
        "translate",
        "summarize",
        "extract",
        "classify",
        "solve",
        "who",
        "what",
        "why",
        "how",
        "sum",
        "total",
        "json",
        "table",
        "puzzle",
        "clue",
        "true",
        "false",
        "best",
        "import",
        "write",
        "a",
        "function",
        "write",
        "a",
        "python",
        "frac",
        "sqrt",
        "price",
        "cost",
        "many",
        "much",
        "$",
        "+",
        "-",
        "*",
        "/",
        "=",
        "^",
        "%",
        "?",
        "```",
        "$$",
        "\\(",
        "\\frac",
        "()",
        "#include",
        "tldr",
        "condense",
        "shorten",
        "label",
        "spam",
        "12",
        "3.5",
        "1,000",
        "ÉTÉ",
        "Straße",
        "日本",
        "😀",
    ]
    spaces = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2028"]
    ranges = [(0, 0x80), (0x80, 0x800), (0x800, 0xD800), (0xD800, 0xE000), (0xE000, 0x110000)]
    out = [
        "",
        " ",
        "?",
        "? \t\n\x0b\x0c\r",
        "what",
        "What is 2+2",
        "x" * 900,
        "x" * 901,
        "é" * 450,
        "é" * 451,
        "é" * 899 + "a",
        "a" * 599 + "é" * 400,  # the head's byte cut falls mid-character
        "é" * 1000 + "?",
        "\ud800",
        "\udfff" * 2000,
        "a\ud83d\ude00b",  # a surrogate pair in a str is two lone surrogates
        "```" + "\n" * 5000,
        "word " * 200_000,  # huge: only the ends are read
        "😀" * 100_000 + " why?",
        "".join(map(chr, range(0x20, 0x7F))) * 20,
        "\x00\x01\x02" * 400,
    ]
    for _ in range(count):
        kind = rng.random()
        n = rng.choice([0, 1, 5, 50, 300, 899, 900, 901, 1500, 5000])
        if kind < 0.4:  # words, spaces, markers
            parts = [rng.choice(words) + rng.choice(spaces) for _ in range(max(1, n // 6))]
            text = "".join(parts)
            if rng.random() < 0.5:
                text = text.upper() if rng.random() < 0.3 else text.capitalize()
        else:  # any code point, surrogates included
            lo, hi = rng.choice(ranges)
            text = "".join(chr(rng.randrange(lo, hi)) for _ in range(n))
            if rng.random() < 0.3:
                text += rng.choice(["?", " ?  ", "?\x1c", "? \n"])
        out.append(text)
    return out


def test_the_compiled_featurizer_is_the_one_in_use() -> None:
    assert featurize.NATIVE


def test_identical_on_every_string_of_the_shared_data() -> None:
    texts = shared_texts()
    assert len(texts) > 10_000
    mismatched = [
        t[:60]
        for t in texts
        if featurize.analyze_set(t, 4096) != featurize._analyze_set_py(t, 4096)
        or featurize.task_kind(t) != featurize._task_kind_py(t)
    ]
    assert not mismatched, (len(mismatched), mismatched[:5])
    kinds = {featurize.task_kind(t) for t in texts}
    assert kinds == set(featurize.TASK_KINDS)  # every rule of the classifier is exercised
    sample = random.Random(5).sample(texts, 1500)
    for dim in DIMS:
        for t in sample:
            assert featurize.analyze_set(t, dim) == featurize._analyze_set_py(t, dim), (dim, t)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_identical_on_generated_text(seed: int) -> None:
    texts = generated_texts(seed)
    for t in texts:
        assert featurize.task_kind(t) == featurize._task_kind_py(t), t[:80]
        for dim in [*random.Random(seed).sample(DIMS, 6), 2, 4096]:
            kind, feats = featurize._analyze_set_py(t, dim)
            assert featurize.analyze_set(t, dim) == (kind, feats), (dim, t[:80])
            assert featurize.analyze(t, dim) == (kind, sorted(feats))


def test_batch_and_sorted_forms() -> None:
    texts = generated_texts(4, 60)
    expect = [sorted(featurize._analyze_set_py(t, 1024)[1]) for t in texts]
    assert featurize.featurize(texts, 1024) == expect
    assert featurize.featurize(tuple(texts), 1024) == expect
    assert [featurize.featurize_text(t, 1024) for t in texts] == expect
    for dim in (0, -4, 3, 1000):
        for call in (featurize.analyze, featurize.analyze_set, featurize.featurize_text):
            with pytest.raises(ValueError, match="power of two"):
                call("x", dim)
        with pytest.raises(ValueError, match="power of two"):
            featurize.featurize([], dim)


def test_the_compiled_functions_refuse_what_is_not_text() -> None:
    with pytest.raises(TypeError):
        _native.task_kind(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _native.analyze_set(None, 7)  # type: ignore[arg-type]


def test_the_python_code_serves_when_the_compiled_package_is_missing() -> None:
    """A build without cargo: importing featurize falls back to the reference."""
    code = (
        "import sys; sys.modules['switchman_native'] = None\n"
        "from switchman_protocol import featurize as f\n"
        "assert not f.NATIVE\n"
        "t = 'Translate to French: what is 2+2?'\n"
        "print(f.task_kind(t), f.analyze(t, 256)[1], f.featurize([t], 256))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    t = "Translate to French: what is 2+2?"
    expect = featurize.analyze(t, 256)
    assert out.stdout.split(" ", 1)[0] == expect[0] == "translation"
    assert out.stdout.strip() == f"{expect[0]} {expect[1]} {[expect[1]]}"


def test_the_compiled_word_lists_are_the_python_ones() -> None:
    """hash-v1's task classifier carries copies of its word lists in Rust; an
    edit of one side alone must fail here, even for a word no prompt holds."""
    lists = dict(_native.featurizer_word_lists())
    expected: dict[str, set[bytes]] = {
        **{f"keywords:{k}": set(v) for k, v in featurize._KEYWORDS.items()},
        **{f"strong:{k}": set(v) for k, v in featurize._STRONG.items()},
        "question": set(featurize._QUESTION_WORDS),
    }
    assert {name: {w.encode() for w in words} for name, words in lists.items()} == expected
