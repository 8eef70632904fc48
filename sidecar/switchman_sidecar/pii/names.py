"""PERSON without a model: gazetteer seeds, capitalisation, and cue phrases.

A token seeds a name when it is a known first or last name (Faker's lists for
~80 locales) that is not also a common English word, and it is capitalised (in
texts that use case at all). A cue ("my name is", "Mr.", "Dear", "User:")
seeds a capitalised token even when no list knows it. Seeds grow over
neighbouring capitalised tokens, initials and name particles ("van der",
"de", "bin") on the same line, which is how unseen surnames are caught.
"""

from __future__ import annotations

import re

from switchman_sidecar.pii.gazetteer import Gazetteer
from switchman_sidecar.pii.spans import Finding

__all__ = ["find_persons"]

WORD_RE = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
PARTICLES = frozenset(
    [
        "van",
        "der",
        "den",
        "de",
        "del",
        "della",
        "di",
        "da",
        "das",
        "dos",
        "du",
        "la",
        "le",
        "von",
        "zu",
        "bin",
        "binti",
        "ibn",
        "al",
        "el",
        "ben",
        "ter",
        "ten",
        "mac",
        "st.",
    ]
)
ORG_SUFFIXES = frozenset(
    [
        "ltd",
        "inc",
        "llc",
        "corp",
        "co",
        "plc",
        "gmbh",
        "ag",
        "sa",
        "group",
        "company",
        "bank",
        "university",
        "school",
        "hospital",
        "ltd.",
        "inc.",
        "corp.",
        "co.",
        "&",
        "consulting",
    ]
)
STRONG_CUES = re.compile(
    r"\b(?:name\s+is|name:|i\s+am|i['\u2019]m|mr\.?|mrs\.?|ms\.?|miss|dr\.?|prof\.?|dear|user:|"
    r"customer:|called|named|(?:user|customer|client|patient|employee)\s+is)[\s,:]*\Z",
    re.IGNORECASE,
)


def _strip_possessive(word: str) -> str:
    if word.endswith(("'s", "\u2019s")):
        return word[:-2]
    return word


def find_persons(text: str, gaz: Gazetteer) -> list[Finding]:
    words = [(m.start(), m.end(), _strip_possessive(m.group())) for m in WORD_RE.finditer(text)]
    if not words:
        return []
    cased = not (text.islower() or text.isupper())
    first, last, common = gaz.first_names, gaz.last_names, gaz.common_words
    n = len(words)
    is_seed = [False] * n
    for i, (start, _, word) in enumerate(words):
        lower = word.lower()
        if cased:
            if not word[0].isupper() or (word.isupper() and len(word) > 1):
                continue
        elif len(word) < 3:
            continue
        if cased and STRONG_CUES.search(text, max(0, start - 24), start):
            is_seed[i] = True  # "my name is Grace": the cue beats the word list
        elif lower not in common and (lower in first or lower in last):
            is_seed[i] = True
    out: list[Finding] = []
    i = 0
    while i < n:
        if not is_seed[i]:
            i += 1
            continue
        lo = hi = i
        # grow left over capitalised tokens / particles on the same line
        while (
            lo > 0
            and _joins(text, words[lo - 1], words[lo])
            and _name_part(words[lo - 1][2], gaz, cased, is_seed[lo - 1])
        ):
            lo -= 1
        while hi + 1 < n and _joins(text, words[hi], words[hi + 1]):
            nxt = words[hi + 1][2]
            if (
                nxt.lower() in PARTICLES
                and hi + 2 < n
                and _joins(text, words[hi + 1], words[hi + 2])
            ) and _name_part(words[hi + 2][2], gaz, cased, is_seed[hi + 2]):
                hi += 2
                continue
            if not _name_part(nxt, gaz, cased, is_seed[hi + 1]):
                break
            hi += 1
        while lo < hi and words[lo][2].lower() in PARTICLES:
            lo += 1
        nxt_word = words[hi + 1][2].lower() if hi + 1 < n else ""
        if nxt_word in ORG_SUFFIXES and _joins(text, words[hi], words[hi + 1]):
            i = hi + 1
            continue
        out.append(Finding(words[lo][0], words[hi][1], "PERSON", 40))
        i = hi + 1
    return out


def _joins(text: str, a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
    """Adjacent on one line: a single space, or an initial's dot and a space."""
    gap = text[a[0] + len(a[2]) : b[0]]
    return gap in (" ", ". ", "-") or (gap == "." and len(a[2]) == 1)


def _name_part(word: str, gaz: Gazetteer, cased: bool, seed: bool) -> bool:
    if seed:
        return True
    lower = word.lower()
    if lower in gaz.common_words or lower in gaz.street_words:
        return False
    if not cased:
        return lower in gaz.first_names or lower in gaz.last_names
    if word.isupper():
        return len(word) == 1  # an initial
    return word[0].isupper()
