"""Prompt features shared by router training (operator, CLI) and inference (sidecar).

Training and inference must turn a prompt into exactly the same features, and
the two sides may share code only through this package, so the featurizer
lives here: pure Python, standard library only, deterministic across
processes (CRC-32, never ``hash()``, which is salted per process) and cheap
enough for the request path (tens of microseconds for a typical prompt).

A featurizer is named by a version string stored in the route table
(``LearnedRouter.featurizer``); a router trained with ``hash-v1`` is only ever
evaluated with ``hash-v1``. Changing what ``hash-v1`` computes would silently
break every trained router, so a change means a new name.

Features are binary and hashed into ``dim`` buckets (a power of two):
word unigrams and bigrams of a bounded head and tail of the prompt, plus
coarse shape features (length, digits, code fences, line count) and the task
kind from :func:`task_kind`. Hashing needs no vocabulary in the route table
and works on any user's data.

The functions below run the compiled ``hash-v1`` of ``switchman_native``
(native/src/router/featurize.rs) when that package imports, and the Python
code of this module otherwise (a build without cargo). The Python code is the
specification: tests require identical kinds and indices from both, on the
shared data and on generated text (tests/protocol/test_featurize_native.py).
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Sequence
from itertools import repeat
from operator import and_, mul, xor

try:
    from switchman_native import _native
except ImportError:  # built without cargo (`pip install .`): the Python code below
    _native = None  # type: ignore[assignment]

__all__ = [
    "FEATURIZER",
    "HEAD_CHARS",
    "NATIVE",
    "TAIL_CHARS",
    "TASK_KINDS",
    "analyze",
    "analyze_set",
    "featurize",
    "featurize_text",
    "supported",
    "task_kind",
]

FEATURIZER = "hash-v1"
#: Whether the compiled featurizer is in use (else the Python reference).
NATIVE = _native is not None
#: Bytes of the prompt's start and end that are tokenized: the instruction is
#: usually at one end, and bounding the work bounds the decision time.
HEAD_CHARS = 600
TAIL_CHARS = 300
#: Task kinds the classifier knows; "chat" is the default.
TASK_KINDS = (
    "code",
    "math",
    "extraction",
    "summarization",
    "translation",
    "classification",
    "reasoning",
    "qa",
    "chat",
)

_TOKEN = re.compile(rb"[a-z]+|[0-9]+|[^\sa-z0-9]")
_BIGRAM = 0x9E3779B1

# Task classifier: keyword sets over the prompt's tokens (set intersections run
# at C speed, unlike alternations of regexes) plus a few substring signals.
# Kinds are tried from the most specific signal to the least; each needs
# ``_MIN_HITS`` distinct keywords, except where a single marker is decisive.
_KEYWORDS: dict[str, frozenset[bytes]] = {
    "code": frozenset(
        b"def python javascript typescript java rust golang sql regex bash function "
        b"functions implement compile compiler debug refactor stacktrace traceback "
        b"return returns code program script assert class method array string list "
        b"algorithm api bug".split()
    ),
    "translation": frozenset(
        b"translate translation translated french german spanish chinese japanese "
        b"italian portuguese korean russian".split()
    ),
    "summarization": frozenset(
        b"summary summarize summarise summarization tldr condense shorten".split()
    ),
    "extraction": frozenset(
        b"extract extraction parse json fields field entities entity table csv yaml schema".split()
    ),
    "math": frozenset(
        b"solve equation integral derivative probability calculate compute sum "
        b"remainder prime percent dollars total integer integers real fraction "
        b"triangle area radius polynomial frac sqrt many much cost".split()
    ),
    "classification": frozenset(
        b"classify classification category categorize categorise sentiment label "
        b"spam toxic positive negative".split()
    ),
    "reasoning": frozenset(
        b"puzzle clue clues logic following statement statements options choices "
        b"correct best true false infer".split()
    ),
}
_MIN_HITS = 2
_DECISIVE: dict[str, frozenset[bytes]] = {
    "code": frozenset(
        [b"```", b"def ", b"#include", b"import ", b"()", b"write a function", b"write a python"]
    ),
    "math": frozenset([b"\\frac", b"\\sqrt", b"$$", b"\\("]),
}
#: One of these words alone decides the kind (checked in ``_ORDER``).
_STRONG: dict[str, frozenset[bytes]] = {
    "translation": frozenset(b"translate translation".split()),
    "summarization": frozenset(b"summarize summarise summarization tldr".split()),
    "extraction": frozenset(b"extract".split()),
    "classification": frozenset(b"classify".split()),
}
_ORDER = (
    "code",
    "translation",
    "summarization",
    "extraction",
    "math",
    "classification",
    "reasoning",
)
_ANY_STRONG = frozenset().union(*_STRONG.values())
_ANY_KEYWORD = frozenset().union(*_KEYWORDS.values())
_QUESTION_WORDS = frozenset(b"who what when where which why how".split())
_OPERATORS = frozenset(b"+ - * / = ^ %".split())
_DECISIVE_RE = tuple(
    (kind, re.compile(b"|".join(re.escape(m) for m in sorted(markers))))
    for kind, markers in _DECISIVE.items()
)
#: Any decisive marker at all: most prompts have none, and one scan says so.
_ANY_DECISIVE = re.compile(
    b"|".join(re.escape(m) for markers in _DECISIVE.values() for m in sorted(markers))
)


def supported(featurizer: str) -> bool:
    return featurizer == FEATURIZER


def _sample(text: str) -> bytes:
    """The lower-cased UTF-8 head and tail of the prompt (the bytes that are tokenized).

    Only the ends are encoded: a character is at least one byte, so the first
    ``HEAD_CHARS`` and last ``TAIL_CHARS`` characters hold the bytes wanted,
    and a long prompt (a RAG context) costs no more than a short one.
    """
    if len(text) > HEAD_CHARS + TAIL_CHARS:
        head = text[:HEAD_CHARS].encode("utf-8", "replace")[:HEAD_CHARS]
        tail = text[-TAIL_CHARS:].encode("utf-8", "replace")[-TAIL_CHARS:]
        return (head + b"\n" + tail).lower()
    raw = text.encode("utf-8", "replace").lower()
    if len(raw) > HEAD_CHARS + TAIL_CHARS:
        raw = raw[:HEAD_CHARS] + b"\n" + raw[-TAIL_CHARS:]
    return raw


def _kind(raw: bytes, tokens: list[bytes], numbers: int) -> str:
    if _ANY_DECISIVE.search(raw):
        for kind, pattern in _DECISIVE_RE:
            if pattern.search(raw):
                return kind
    present = set(tokens)
    if present & _ANY_STRONG:
        for kind, strong in _STRONG.items():
            if present & strong:
                return kind
    # Most prompts hit fewer keywords than any kind needs: one intersection decides that.
    if len(present & _ANY_KEYWORD) >= _MIN_HITS:
        best, hits = "", _MIN_HITS - 1
        for kind in _ORDER:
            n = len(present & _KEYWORDS[kind])
            if n > hits:
                best, hits = kind, n
        if best:
            return best
    if numbers >= 2 and (present & _OPERATORS or b"$" in present):
        return "math"
    if (tokens and tokens[0] in _QUESTION_WORDS) or raw.rstrip().endswith(b"?"):
        return "qa"
    return "chat"


def task_kind(text: str) -> str:
    """A coarse task kind for routing rules and per-task quality (a few µs)."""
    if _native is not None:
        return _native.task_kind(text)
    return _task_kind_py(text)


def _mask(dim: int) -> int:
    """``dim - 1`` for the compiled code, which computes in 64 bits: hashes stay below
    2^64, so any larger ``dim`` gives the indices ``2^64`` gives."""
    if dim <= 0 or dim & (dim - 1):
        raise ValueError(f"feature dimension must be a power of two, got {dim}")
    return min(dim, 1 << 64) - 1


def analyze(text: str, dim: int) -> tuple[str, list[int]]:
    """The task kind and the sorted unique feature indices in ``[0, dim)``.

    One tokenization serves both, which is what the request path wants.
    """
    if _native is not None:
        return _native.analyze(text, _mask(dim))
    kind, feats = _analyze_set_py(text, dim)
    return kind, sorted(feats)


def analyze_set(text: str, dim: int) -> tuple[str, set[int]]:
    """:func:`analyze` with the indices as an (unordered) set: what a scorer needs."""
    if _native is not None:
        return _native.analyze_set(text, _mask(dim))
    return _analyze_set_py(text, dim)


def featurize_text(text: str, dim: int) -> list[int]:
    """Sorted unique feature indices in ``[0, dim)`` for one prompt."""
    return analyze(text, dim)[1]


def featurize(texts: Sequence[str], dim: int) -> list[list[int]]:
    """Batch form for training."""
    if _native is not None:
        return _native.featurize_batch(list(texts), _mask(dim))
    _mask(dim)
    return [sorted(_analyze_set_py(t, dim)[1]) for t in texts]


# -- the Python reference (the specification of hash-v1) --------------------------


def _task_kind_py(text: str) -> str:
    """:func:`task_kind` in Python."""
    raw = _sample(text)
    tokens = _TOKEN.findall(raw)
    return _kind(raw, tokens, sum(map(bytes.isdigit, tokens)))


def _analyze_set_py(text: str, dim: int) -> tuple[str, set[int]]:
    """:func:`analyze_set` in Python."""
    if dim <= 0 or dim & (dim - 1):
        raise ValueError(f"feature dimension must be a power of two, got {dim}")
    raw = _sample(text)
    tokens = _TOKEN.findall(raw)
    digits = sum(map(bytes.isdigit, tokens))  # digit runs are whole tokens
    kind = _kind(raw, tokens, digits)
    mask = dim - 1
    # Only the low bits of a hash survive the mask, so the unigram hashes are masked
    # first and the bigram hash ``((a * _BIGRAM) ^ b) & mask`` is computed on masked
    # operands: the same indices, on small ints. map() over C callables keeps the
    # per-token work out of the interpreter loop.
    masks = repeat(mask)
    uni = list(map(and_, map(zlib.crc32, tokens), masks))
    feats = set(uni)
    feats.update(map(xor, map(and_, map(mul, uni, repeat(_BIGRAM & mask)), masks), uni[1:]))
    feats.update(
        _shape_hashes(
            (len(text) // 16).bit_length(),
            digits.bit_length(),
            text.count("\n").bit_length(),
            b"```" in raw,
            kind,
            mask,
        )
    )
    return kind, feats


@functools.lru_cache(maxsize=4096)
def _shape_hashes(
    length: int, digits: int, lines: int, fence: bool, kind: str, mask: int
) -> tuple[int, ...]:
    """Coarse shape features; few distinct values, so their hashes are cached."""
    shape = (
        b"len=%d" % length,
        b"num=%d" % digits,
        b"lines=%d" % lines,
        b"fence=%d" % fence,
        b"task=" + kind.encode(),
    )
    return tuple(zlib.crc32(s, 0x5EED) & mask for s in shape)
