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

import bisect
import itertools
import operator
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
_CUE_BODIES = {  # cue phrases by first letter ("address is", "lives at", "zip code")
    "a": r"ddress(?:\s+is)?|ddress\s*:|rrived\s+at",
    "l": r"ives?\s+(?:at|in)|iving\s+at|ocated\s+at",
    "m": r"oved\s+to",
    "s": r"en[dt](?:\s+it)?\s+to|hip(?:ped)?\s+to",
    "d": r"eliver(?:ed)?\s+to",
    "i": r"s\s+at",
    "z": r"ip\s*(?:code)?(?:\s+is)?",
    "p": r"ost(?:al)?\s*code(?:\s+is)?",
    "c": r"orner\s+of",
}
_CUE_FIRST = "".join(k + k.upper() for k in _CUE_BODIES)
#: A plain class first (the engine skips ahead to those letters), then the
#: word boundary as a lookbehind and the rest per first letter: twice as fast
#: as ``\b(?:address|lives...)`` with IGNORECASE, same matches.
CUE_RE = re.compile(
    rf"[{_CUE_FIRST}](?<![^\W_][{_CUE_FIRST}])(?i:"
    + "|".join(rf"(?<=[{k}{k.upper()}])(?:{v})" for k, v in _CUE_BODIES.items())
    + r")[\s:,]*"
)
PLACE_WORD_RE = re.compile(r"[^\W\d_]+(?:['\u2019.-][^\W\d_]+)*")
_UPPER = "".join(re.escape(c) for c in map(chr, range(0x530)) if c.isupper())
CAP_WORD_RE = re.compile(rf"[{_UPPER}](?<![^\W\d_][{_UPPER}])[^\W\d_]*(?:['\u2019.-][^\W\d_]+)*")
MAX_GAP = 3
"""Characters of separator (spaces, comma, newline, '>') allowed inside an address."""


def _streety(lower: str, gaz: Gazetteer) -> bool:
    return lower in gaz.street_words or (len(lower) > 5 and lower.endswith(STREET_ENDINGS))


def find_addresses(text: str, gaz: Gazetteer, barriers: list[tuple[int, int]]) -> list[Finding]:
    """Addresses, looked for only around digits: every anchor (house number,
    unit number, street word with a number, cue with a number) has one within
    a few tokens, so the grammar runs on short windows instead of every token
    of the text (most of a 4 KB prompt is prose). Digits inside a structured
    finding (a phone, card or IP number) anchor nothing."""
    size = len(text)
    ordered = sorted(barriers)
    # numbers closer than the two margins share a window: one C-level pass
    # finds the windows' cores (first to last number), on a copy of the text
    # where the barriers and every digit run they touch are blanked out
    masked = _blank(text, ordered) if ordered else text
    windows = [
        [max(0, m.start() - WINDOW_BEFORE), min(size, m.end() + WINDOW_AFTER)]
        for m in WINDOWS_RE.finditer(masked)
    ]
    if not windows:
        return []
    cache = _kind_cache(gaz, _cased(text))
    out: list[Finding] = []
    for lo, hi in windows:
        while lo > 0 and not text[lo - 1].isspace():
            lo -= 1
        while True:
            found, reached_end = _scan_window(text, lo, hi, cache, ordered)
            if not reached_end or hi >= size:
                break
            hi = min(size, hi + WINDOW_AFTER)  # the address runs on past the window
        out.extend(f for f in found if not out or f.start >= out[-1].end)
    return out


WINDOW_BEFORE, WINDOW_AFTER = 56, 56
#: Digit runs, and the runs that follow within the two margins: one window.
WINDOWS_RE = re.compile(rf"\d++(?:\D{{0,{WINDOW_BEFORE + WINDOW_AFTER}}}+\d++)*+")


def _blank(text: str, ordered: list[tuple[int, int]]) -> str:
    """``text`` with the spans of ``ordered`` (sorted) and the whole of every
    digit run that meets one replaced by spaces (same length)."""
    pieces = []
    pos = 0
    size = len(text)
    for s, e in ordered:
        if e <= s:
            continue
        if text[s].isdecimal():  # a run that starts before the span
            while s > 0 and text[s - 1].isdecimal():
                s -= 1
        if text[e - 1].isdecimal():  # ... or runs on after it
            while e < size and text[e].isdecimal():
                e += 1
        s = max(s, pos)
        if e > s:
            pieces.append(text[pos:s])
            pieces.append(" " * (e - s))
            pos = e
    pieces.append(text[pos:])
    return "".join(pieces)


#: TOKEN_RE as a splitter: separators and tokens alternate, found in C
#: without a match object per token.
TOKEN_SPLIT_RE = re.compile(rf"({TOKEN_RE.pattern})")


def _scan_window(
    text: str,
    lo: int,
    hi: int,
    cache: _KindCache,
    barriers: list[tuple[int, int]],
) -> tuple[list[Finding], bool]:
    parts = TOKEN_SPLIT_RE.split(text[lo:hi])
    words = parts[1::2]
    n = len(words)
    if n == 0:
        return [], False
    offsets = list(itertools.accumulate(map(len, parts), initial=lo))
    toks = list(zip(offsets[1:-1:2], offsets[2::2], words, strict=True))
    if hi < len(text) and not text[hi].isspace():
        toks.pop()  # cut in the middle of a token
        words.pop()
        n -= 1
        if n == 0:
            return [], True
    starts = offsets[1::2]
    blocked = [False] * n
    if barriers:
        for bs, be in barriers:
            if be <= toks[0][0] or bs >= toks[-1][1]:
                continue
            j = max(0, bisect.bisect_right(starts, bs) - 1)
            while j < n and toks[j][0] < be:
                if toks[j][1] > bs:
                    blocked[j] = True
                j += 1
    kinds = list(map(cache.__getitem__, words))
    cased = cache.cased
    # anchor candidates: anchor kinds, and the first token after a cue phrase
    cands = [i for i, k in enumerate(kinds) if k in _ANCHOR_KINDS]
    cued: set[int] = set()
    for m in CUE_RE.finditer(text, max(0, lo - 40), hi):
        j = bisect.bisect_left(starts, m.end())
        if j < n and starts[j] == m.end():
            cued.add(j)
    if cued:
        cands = sorted(cued.union(cands))
    out: list[Finding] = []
    reached_end = False
    i = 0
    for c in cands:
        if c < i:
            continue
        anchor = _anchor(text, toks, kinds, blocked, c, c in cued)
        if anchor is None:
            continue
        lo_t, hi_t = anchor
        while hi_t + 1 < n and not blocked[hi_t + 1] and _near(text, toks[hi_t], toks[hi_t + 1]):
            nxt = kinds[hi_t + 1]
            # lower-cased texts: a word is fine when a number follows ("rua d 25")
            lower_street = nxt == "word" and not cased and hi_t + 2 < n and kinds[hi_t + 2] == "num"
            if nxt in _BODY_KINDS or lower_street:
                hi_t += 1
            else:
                break
        reached_end = hi_t >= n - 2
        # trailing tokens that only make sense with more address after them
        while hi_t > lo_t and toks[hi_t][2].lower() in ("and", "the", "of"):
            hi_t -= 1
        start, end = toks[lo_t][0], toks[hi_t][1]
        last = toks[hi_t][2]
        if end > start and text[end - 1] == "." and last.lower() not in UNITS and len(last) > 3:
            end -= 1
        out.append(Finding(start, end, "STREET_ADDRESS", 30))
        i = hi_t + 1
    return out, reached_end


_ANCHOR_KINDS = frozenset({"num", "zip", "unit", "street"})
_WORDY = frozenset({"cap", "upper", "word", "place"})
_BODY_KINDS = frozenset({"num", "zip", "unit", "street", "cap", "place", "upper"})


def _cased(text: str) -> bool:
    """Whether the text uses case at all (lower-cased chat logs do not)."""
    return not (text.islower() or text.isupper())


class _KindCache(dict[str, str]):
    """Token → kind, per word lists and casing: prompts repeat most of their
    tokens, and a dict hit (``map(cache.__getitem__, tokens)``, in C) is
    several times cheaper than classifying again. A miss is classified and
    kept only when the token is list vocabulary ("the", "Apt.", "Street",
    "waist."), never request data: numbers, names, places and street names
    found by their ending ("Bahnhofstrasse") are not kept."""

    def __init__(self, gaz: Gazetteer, cased: bool) -> None:
        super().__init__()
        self.gaz = gaz
        self.cased = cased

    def __missing__(self, tok: str) -> str:
        # a miss is the expensive path of the scan (names, numbers and words
        # no list has are ~200 tokens of a dense prompt): one lower(), no call
        if tok.isdecimal():  # the common number: no regex, nothing kept
            return "num" if len(tok) <= 5 else "zip" if len(tok) <= 6 else "other"
        c = tok[0]
        if c.isdigit():
            bare = tok.rstrip(".")
            return "num" if NUM_RE.match(bare) else "zip" if ZIP_RE.match(bare) else "other"
        gaz = self.gaz
        lower = tok.lower()
        if lower in UNITS:
            kind = "unit"
        elif lower in gaz.street_words or (len(lower) > 5 and lower.endswith(STREET_ENDINGS)):
            kind = "street"
        elif lower in gaz.places:
            return "place"
        elif not c.isalpha():
            return "other"
        elif lower in gaz.common_words and (not self.cased or not c.isupper()):
            kind = "common"
        elif c.isupper():
            kind = ("zip" if ZIP_RE.match(tok) else "upper") if tok.isupper() else "cap"
            if kind == "zip":
                return kind
        else:
            kind = "word"
        if len(self) >= _KIND_CACHE_MAX:
            return kind
        core = lower.strip(_PUNCT)
        if kind == "unit" or (
            (lower in gaz.common_words or lower in gaz.street_words or core in gaz.english)
            and core not in gaz.first_names
            and core not in gaz.last_names
            and core not in gaz.places
        ):
            self[tok] = kind
        return kind


_PUNCT = ".,!?'\"\u2019"
_KIND_CACHES: dict[tuple[int, bool], _KindCache] = {}
_KIND_CACHE_MAX = 50_000


def _kind_cache(gaz: Gazetteer, cased: bool) -> _KindCache:
    """The cache for these word lists and this casing (kept by the lists' id:
    the cache holds the lists, so the id cannot be reused while cached)."""
    cache = _KIND_CACHES.get((id(gaz), cased))
    if cache is None:
        if len(_KIND_CACHES) > 8:
            _KIND_CACHES.clear()
        cache = _KIND_CACHES[(id(gaz), cased)] = _KindCache(gaz, cased)
    return cache


def _near(text: str, a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
    end = a[1]
    if b[0] == end + 1:  # one separator, the common case: no slice
        return text[end] not in ";:" and a[2][-1] not in "!?"
    if b[0] - end > MAX_GAP + 2:
        return False
    gap = text[end : b[0]]
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


PLACE_CUES = (
    " in", " In", " IN", " from", " From", " FROM", " near", " Near", " visiting", " Visiting",
    " visit", " Visit", " city of", " City of", "where:", "Where:", "WHERE:", " via", " Via",
)  # fmt: skip
"""What precedes an unlisted place (checked with ``str.endswith`` on the text,
no slicing): "grew up in Kalatsova", "From Fala", "WHERE: Dornberk"."""


def _overlaps(ordered: list[tuple[int, int]], ends: list[int], start: int, end: int) -> bool:
    """Whether [start, end) meets a span of ``ordered`` (sorted by start;
    ``ends`` holds the running maximum of their ends)."""
    k = bisect.bisect_left(ordered, (end,)) - 1
    return k >= 0 and ends[k] > start


def find_locations(text: str, gaz: Gazetteer, taken: list[tuple[int, int]]) -> list[Finding]:
    """Known places outside addresses (single words and two/three-word names),
    and unlisted ones after a place preposition."""
    cased = _cased(text)
    out: list[Finding] = []
    ordered = sorted(taken)
    ends = list(itertools.accumulate((e for _, e in ordered), max))
    # cased text: only capitalised words can start or end a place name, and a
    # regex that skips to them is far cheaper than looking at every word; the
    # words are split out and checked against the lists in C (map, compress),
    # so Python only looks at the few candidates
    parts = (CAP_WORD_SPLIT_RE if cased else PLACE_WORD_SPLIT_RE).split(text)
    words = parts[1::2]
    n = len(words)
    if n == 0:
        return out
    offsets = list(itertools.accumulate(map(len, parts), initial=0))
    starts, stops = offsets[1:-1:2], offsets[2::2]
    lowers = list(map(str.lower, words))
    places, first_words = gaz.places, gaz.place_first_words
    in_places, in_first = map(places.__contains__, lowers), map(first_words.__contains__, lowers)
    listed = map(operator.or_, in_places, in_first)
    cands = set(itertools.compress(range(n), listed))
    cued: set[int] = set()
    if cased:
        index = dict(zip(starts, range(n), strict=True))
        for m in PLACE_CUE_RE.finditer(text):
            k = index.get(m.end())
            if k is not None:
                cued.add(k)
        cands |= cued
    i = 0
    for c in sorted(cands):
        if c < i:
            continue
        s, e, w, lower = starts[c], stops[c], words[c], lowers[c]
        span = None
        if lower in first_words:
            for width in (3, 2):
                if c + width <= n:
                    cand = text[s : stops[c + width - 1]]
                    if " ".join(cand.lower().split()) in places:
                        span = (s, stops[c + width - 1], width)
                        break
        if span is None and lower in places:
            span = (s, e, 1)
        if (
            span is None
            and c in cued
            and not w.isupper()
            and lower not in gaz.english
            and not gaz.is_name(lower)
        ):
            # "from Fala", "born in Kalatsova": a place no list knows, after a
            # place preposition; it takes up to three capitalised words
            j = c
            while j + 1 < n and j < c + 2 and parts[2 * j + 2] == " ":
                j += 1
            span = (s, stops[j], j - c + 1)
        if span is not None and not _overlaps(ordered, ends, span[0], span[1]):
            out.append(Finding(span[0], span[1], "LOCATION", 45))
            i = c + span[2]
    return out


CAP_WORD_SPLIT_RE = re.compile(f"({CAP_WORD_RE.pattern})")
PLACE_WORD_SPLIT_RE = re.compile(f"({PLACE_WORD_RE.pattern})")
PLACE_CUE_RE = re.compile(
    rf"[ ](?=[{_UPPER}])(?:" + "|".join(rf"(?<={re.escape(c)}[ ])" for c in PLACE_CUES) + ")"
)
"""The space between a place preposition and a capitalised word: a space
first, so the engine skips ahead to spaces."""
