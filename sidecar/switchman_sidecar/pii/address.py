"""STREET_ADDRESS and LOCATION without a model: an address grammar.

An address is anchored by something only addresses have: a house number next
to a street word ("12 Crown Street", "ul. Lubartowska 42", "Koskikatu 25"),
a unit ("Apt. 870", "Suite 776", "P.O. Box 101", "PSC 1437"), or a cue
("my address is", "lives at", "zip code is"). From the anchor it extends over
what follows in addresses — more numbers, capitalised or upper-case words,
units, places, state codes and postcodes, across commas and line breaks — and
stops at ordinary lower-case prose or at another finding (a phone number on
the next line). LOCATION is a known country, state or city outside addresses.
"""

from __future__ import annotations

import re

from switchman_sidecar.pii.gazetteer import Gazetteer
from switchman_sidecar.pii.spans import Finding

__all__ = ["find_addresses", "find_locations"]

TOKEN_RE = re.compile(r"[^\s,;:()>\"]+")
NUM_RE = re.compile(r"^(?:\d{1,5}[A-Za-z]?|\d{1,5}[/-]\d{1,5}[A-Za-z]?)$")
ZIP_RE = re.compile(
    r"^(?:\d{4,6}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?|\d[A-Z]{2}|[A-Z]\d[A-Z]|\d[A-Z]\d)$"
)
UNITS = frozenset(
    [
        "apt",
        "apt.",
        "apartment",
        "suite",
        "ste",
        "ste.",
        "unit",
        "box",
        "p.o.",
        "po",
        "p.o.box",
        "psc",
        "uss",
        "usns",
        "usnv",
        "fpo",
        "apo",
        "dpo",
        "floor",
        "fl",
        "fl.",
        "flat",
        "room",
        "rm",
        "bldg",
        "bldg.",
        "building",
        "no.",
        "nr.",
        "lot",
    ]
)
STREET_ENDINGS = (
    "strasse", "straße", "stasse", "gasse", "weg", "platz", "allee", "katu", "tie", "vej",
    "gade", "gatan", "vägen", "veien", "gata", "laan", "straat", "steeg", "utca", "ulica",
    "weg.", "str.", "hrauni", "vegur", "gata", "stræde", "plein", "kuja", "polku",
)  # fmt: skip
CUE_RE = re.compile(
    r"\b(?:address(?:\s+is)?|address\s*:|lives?\s+(?:at|in)|living\s+at|moved\s+to|"
    r"sen[dt](?:\s+it)?\s+to|ship(?:ped)?\s+to|deliver(?:ed)?\s+to|located\s+at|is\s+at|"
    r"arrived\s+at|zip\s*(?:code)?(?:\s+is)?|post(?:al)?\s*code(?:\s+is)?|corner\s+of)"
    r"[\s:,]*",
    re.IGNORECASE,
)
PLACE_WORD_RE = re.compile(r"[^\W\d_]+(?:['\u2019.-][^\W\d_]+)*")
MAX_GAP = 3
"""Characters of separator (spaces, comma, newline, '>') allowed inside an address."""


def _streety(lower: str, gaz: Gazetteer) -> bool:
    return lower in gaz.street_words or (len(lower) > 5 and lower.endswith(STREET_ENDINGS))


def find_addresses(text: str, gaz: Gazetteer, barriers: list[tuple[int, int]]) -> list[Finding]:
    toks = [(m.start(), m.end(), m.group()) for m in TOKEN_RE.finditer(text)]
    n = len(toks)
    if n == 0:
        return []
    cased = _cased(text)
    blocked = [False] * n
    if barriers:
        for idx, (s, e, _) in enumerate(toks):
            blocked[idx] = any(s < be and bs < e for bs, be in barriers)
    cue_ends = {m.end() for m in CUE_RE.finditer(text)}
    kinds = [_kind(t[2], gaz, cased) for t in toks]
    out: list[Finding] = []
    i = 0
    while i < n:
        k = kinds[i]
        if k not in _ANCHOR_KINDS and toks[i][0] not in cue_ends:
            i += 1
            continue
        anchor = _anchor(text, toks, kinds, blocked, i, toks[i][0] in cue_ends)
        if anchor is None:
            i += 1
            continue
        lo, hi = anchor
        while hi + 1 < n and not blocked[hi + 1] and _near(text, toks[hi], toks[hi + 1]):
            nxt = kinds[hi + 1]
            # lower-cased texts: a word is fine when a number follows ("rua d 25")
            lower_street = nxt == "word" and not cased and hi + 2 < n and kinds[hi + 2] == "num"
            if nxt in _BODY_KINDS or lower_street:
                hi += 1
            else:
                break
        # trailing tokens that only make sense with more address after them
        while hi > lo and toks[hi][2].lower() in ("and", "the", "of"):
            hi -= 1
        start, end = toks[lo][0], toks[hi][1]
        last = toks[hi][2]
        if end > start and text[end - 1] == "." and last.lower() not in UNITS and len(last) > 3:
            end -= 1
        out.append(Finding(start, end, "STREET_ADDRESS", 30))
        i = hi + 1
    return out


_ANCHOR_KINDS = frozenset({"num", "zip", "unit", "street"})
_WORDY = frozenset({"cap", "upper", "word", "place"})
_BODY_KINDS = frozenset({"num", "zip", "unit", "street", "cap", "place", "upper"})


def _cased(text: str) -> bool:
    """Whether the text uses case at all (lower-cased chat logs do not)."""
    return not (text.islower() or text.isupper())


def _kind(tok: str, gaz: Gazetteer, cased: bool) -> str:
    c = tok[0]
    if c.isdigit():
        tok = tok.rstrip(".")
        if NUM_RE.match(tok):
            return "num"
        return "zip" if ZIP_RE.match(tok) else "other"
    lower = tok.lower()
    if lower in UNITS:
        return "unit"
    if lower in gaz.street_words or (len(lower) > 5 and lower.endswith(STREET_ENDINGS)):
        return "street"
    if lower in gaz.places:
        return "place"
    if not c.isalpha():
        return "other"
    if lower in gaz.common_words and (not cased or not c.isupper()):
        return "common"
    if c.isupper():
        if tok.isupper():
            return "zip" if ZIP_RE.match(tok) else "upper"
        return "cap"
    return "word"


def _near(text: str, a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
    if b[0] - a[1] > MAX_GAP + 2:
        return False
    gap = text[a[1] : b[0]]
    if gap.count("\n") > 1 or a[2][-1] in "!?":
        return False
    return not any(c in ".!?;:" for c in gap)


def _anchor(
    text: str,
    toks: list[tuple[int, int, str]],
    kinds: list[str],
    blocked: list[bool],
    i: int,
    cued: bool,
) -> tuple[int, int] | None:
    """(first, last) token of an address core around token ``i``, or None."""
    if blocked[i]:
        return None
    n = len(toks)
    k = kinds[i]
    # A unit with its number: "Apt. 870", "Suite 776", "P.O. Box 101", "PSC 1437".
    if k == "unit":
        j = i + 1
        if j < n and kinds[j] == "unit":
            j += 1
        if j < n and kinds[j] in ("num", "zip") and _near(text, toks[j - 1], toks[j]):
            return i, j
        return None
    # A cue, then a number soon: "lives at 18 ...", "zip code is 98547".
    if cued and k != "common" and (k in ("num", "zip") or _has_num_soon(toks, kinds, i)):
        return i, i
    # House number, then up to five words, one of them a street word or a number.
    if k == "num":
        j = i + 1
        while j < n and j <= i + 6 and _near(text, toks[j - 1], toks[j]) and not blocked[j]:
            if kinds[j] == "street" or (
                kinds[j] == "num" and any(kinds[x] in _WORDY for x in range(i + 1, j))
            ):
                return i, j
            if kinds[j] in ("common", "unit", "other"):
                break
            j += 1
        return None
    # A street word with a number after it, and the capitalised words before it:
    # "Rue Dielhère 446", "ul. Lubartowska 42", "Genterstrasse 49", "Crown Street 4".
    if k == "street":
        j = i + 1
        while j < n and j <= i + 4 and _near(text, toks[j - 1], toks[j]) and not blocked[j]:
            if kinds[j] == "num":
                lo = i
                while (
                    lo > 0
                    and lo > i - 3
                    and kinds[lo - 1] in ("cap", "upper", "place")
                    and not blocked[lo - 1]
                    and _near(text, toks[lo - 1], toks[lo])
                ):
                    lo -= 1
                return lo, j
            if kinds[j] not in ("cap", "upper", "word", "place", "street"):
                break
            j += 1
    return None


def _has_num_soon(toks: list[tuple[int, int, str]], kinds: list[str], i: int) -> bool:
    return any(kinds[j] in ("num", "zip") for j in range(i, min(len(toks), i + 6)))


def find_locations(text: str, gaz: Gazetteer, taken: list[tuple[int, int]]) -> list[Finding]:
    """Known places outside addresses (single words and two/three-word names)."""
    cased = _cased(text)
    out: list[Finding] = []
    words = [(m.start(), m.end(), m.group()) for m in PLACE_WORD_RE.finditer(text)]
    i = 0
    n = len(words)
    while i < n:
        s, e, w = words[i]
        if cased and not w[:1].isupper():
            i += 1
            continue
        lower = w.lower()
        span = None
        if lower in gaz.place_first_words:
            for width in (3, 2):
                if i + width <= n:
                    cand = text[s : words[i + width - 1][1]]
                    if " ".join(cand.lower().split()) in gaz.places:
                        span = (s, words[i + width - 1][1], width)
                        break
        if span is None and lower in gaz.places:
            span = (s, e, 1)
        if span is not None and not any(span[0] < te and ts < span[1] for ts, te in taken):
            out.append(Finding(span[0], span[1], "LOCATION", 45))
            i += span[2]
            continue
        i += 1
    return out
