"""The names recognizer reads two end-anchored cue patterns backwards
(``match`` on the reversed text instead of ``search`` ending at ``\\Z``): the
reversed patterns must accept exactly the texts the forward ones do."""

from __future__ import annotations

import random
import re
from pathlib import Path

from switchman_sidecar.pii import names

# The forward forms, as names.py had them before they were reversed: the
# reference the reversed patterns are checked against.
STRONG_CUE_RE = re.compile(
    r"(?:\bname\s+is|\bname\s*[:?]|\bi\s+am|\bi['\u2019]m|\bdear|\bsigned(?:\s+by)?|\bregards|"
    r"\bsincerely|\bcalled|\bnamed(?:\s+(?:him|her))?|\bcalls?\s+me|\bwhy\s+is|\btribute\s+to|"
    r"\b(?:contact(?:\s+person)?|patient|customer|client|employee|user|beneficiary|holder)"
    r"(?:\s+(?:is|was|name))?|\bfrom\s*:|\bcc\s*:|\bto\s*:|\battn\.?|\battention|\bmeet|"
    r"\bmet|\bthis\s+is|\bspeak\s+(?:to|with)|\bask\s+for)[\s,:]*\Z",
    re.IGNORECASE,
)
LIST_BEFORE_RE = names.LIST_BEFORE_RE

CUE_WORDS = (
    "name", "is", "i", "am", "i'm", "I\u2019M", "dear", "signed", "by", "regards", "sincerely",
    "called", "named", "him", "her", "calls", "call", "me", "why", "tribute", "to", "contact",
    "person", "patient", "customer", "client", "employee", "user", "beneficiary", "holder",
    "was", "from", "cc", "attn", "attention", "meet", "met", "this", "speak", "with", "ask",
    "for", "Mark", "Anna", "and", "Ö", "x", "nickname", "username", "unmet", "O'Neil",
)  # fmt: skip
SEPARATORS = (" ", "  ", ", ", ": ", ":", "?", ".", "\n", "\t", "", ",", " - ", "'")


def _texts() -> list[str]:
    rng = random.Random(11)
    out = []
    for _ in range(30_000):
        words = [rng.choice(CUE_WORDS) for _ in range(rng.randint(1, 5))]
        text = "".join(w + rng.choice(SEPARATORS) for w in words)
        if rng.random() < 0.5:
            text = text.upper() if rng.random() < 0.3 else text.title()
        out.append(text[-30:])
    # the text before every capitalised run of this repository's docs (real prose)
    docs = Path(__file__).resolve().parents[2] / "docs"
    for f in sorted(docs.glob("*.md")):
        text = f.read_text(encoding="utf-8")
        for m in names.CAP_RUN_RE.finditer(text):
            out.append(text[max(0, m.start() - 30) : m.start()])
    return out


def test_reversed_cue_patterns_accept_the_same_texts() -> None:
    texts = _texts()
    strong = list_before = 0
    for text in texts:
        rev = text[::-1]
        forward = STRONG_CUE_RE.search(text) is not None
        assert forward == (names.STRONG_CUE_REV_RE.match(rev) is not None), text
        strong += forward
        forward = LIST_BEFORE_RE.search(text) is not None
        assert forward == (names.LIST_BEFORE_REV_RE.match(rev) is not None), text
        list_before += forward
    # both outcomes were exercised, many times
    assert 1_000 < strong < len(texts) - 1_000
    assert 100 < list_before < len(texts) - 1_000
