"""PERSON without a model: evidence scored on runs of capitalised words.

Lists alone only find names somebody already wrote down, so each candidate (a
run of capitalised words, with initials and particles such as "van der") is
scored on evidence that does not depend on knowing the name:

* a known first or last name (Faker's lists, ~80 locales) that is not also a
  common English word — strong on its own, and an unknown capitalised word
  next to it is taken as the rest of the name ("Anna Wiśniewski-Kowal");
* an honorific in or before the run ("Mr", "Dr.", "Prof") or a cue phrase
  before it ("my name is", "I am", "Dear", "signed", "patient", "cc:");
* shape: two to four capitalised words, none a common English word, not at a
  sentence start (where capitals are grammar, not names); a possessive;
* a word of the run inside an e-mail address of the same text;
* context: "by", "with", "and", "hi", "thanks" before (weak), words that
  take a person ("starring", "said", "told") before, "said", "is a", "was",
  "spent", a verb with "his/her" after, a possessive with what people have
  ("X's address"), a vocative (", Paul!"), a speaker's label ('Mia: "...'),
  an enumeration or a pair before "were".

A run must reach ``THRESHOLD``; weights were tuned on generated_large.json
with its names removed from the lists (``switchman pii eval --unseen-names``)
and checked on synth_v2_dev.json (see docs/pii.md). Runs followed by an
organisation suffix ("Ltd", "Inc") and known places without name evidence are
left to the other recognizers; CamelCase identifiers ("RoutingPolicy") are not
names. The regex does the tokenising (one C-level split of the text), the word
cache drops the runs the lists know to skip, and Python only scores the rest.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence

from switchman_sidecar.pii.gazetteer import Gazetteer
from switchman_sidecar.pii.spans import Finding

__all__ = ["CAP_RUN_RE", "THRESHOLD", "find_persons"]

# Upper-case letters of the scripts we tokenise (Latin, Greek, Cyrillic).
_U = "".join(re.escape(c) for c in map(chr, range(0x530)) if c.isupper())
_L = r"[^\W\d_]"
#: A capitalised word: letters, inner apostrophes and hyphens ("O'Neil",
#: "Abernathy-Vosk"); written as runs of a class, which the engine loops
#: over in C, rather than an alternation per character.
_TOK = rf"[{_U}]{_L}*(?:['\u2019-]{_L}+)*"
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
    ]
)
_PART = "|".join(sorted(PARTICLES, key=len, reverse=True))
_BY_FIRST: dict[str, list[str]] = {}
for _p in sorted(PARTICLES, key=len, reverse=True):
    _BY_FIRST.setdefault(_p[0], []).append(_p[1:])
#: The particles grouped by first letter: one branch tried per junction.
_PART_FIRST = "|".join(f"{k}(?:{'|'.join(v)})" for k, v in _BY_FIRST.items())
#: A run of capitalised words on one line: single spaces, an initial's ". ",
#: hyphens, and lower-case particles between them.
CAP_RUN_RE = re.compile(  # the class first, then the lookbehind: the engine skips ahead
    rf"[{_U}](?<![\w@'\u2019.-][{_U}]){_L}*(?:['\u2019-]{_L}+)*"
    rf"(?:(?:[ ]|\.[ ]?|-)(?:(?:{_PART_FIRST})[ ])*{_TOK})*(?![\w@])"
)
CAP_RUN_SPLIT_RE = re.compile(f"({CAP_RUN_RE.pattern})")
_WORD_IN_RUN = re.compile(rf"{_TOK}|(?:{_PART})(?= )")
_WORD_SPLIT_RE = re.compile(f"({_WORD_IN_RUN.pattern})")
WORD_RE = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")

HONORIFICS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "professor",
        "sir",
        "madam",
        "dame",
        "lord",
        "lady",
        "rev",
        "fr",
        "sr",
        "sra",
        "srta",
        "herr",
        "frau",
        "mme",
        "mlle",
        "monsieur",
        "don",
        "doña",
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
        "consulting",
        "limited",
        "partners",
        "associates",
        "foundation",
        "institute",
    ]
)
STRONG_CUE_RE = re.compile(
    r"(?:\bname\s+is|\bname\s*[:?]|\bi\s+am|\bi['\u2019]m|\bdear|\bsigned(?:\s+by)?|\bregards|"
    r"\bsincerely|\bcalled|\bnamed(?:\s+(?:him|her))?|\bcalls?\s+me|\bwhy\s+is|\btribute\s+to|"
    r"\b(?:contact(?:\s+person)?|patient|customer|client|employee|user|beneficiary|holder)"
    r"(?:\s+(?:is|was|name))?|\bfrom\s*:|\bcc\s*:|\bto\s*:|\battn\.?|\battention|\bmeet|"
    r"\bmet|\bthis\s+is|\bspeak\s+(?:to|with)|\bask\s+for)[\s,:]*\Z",
    re.IGNORECASE,
)
#: STRONG_CUE_RE read backwards, for ``match`` on the reversed text before a
#: run: the cue must end the text, so the engine tries one position instead
#: of every one (same answer: each branch is its own reversal, ``\b`` is
#: symmetric; tests/pii/test_reversed_cues.py checks it on real and random text).
STRONG_CUE_REV_RE = re.compile(
    r"[\s,:]*(?:si\s+eman\b|[:?]\s*eman\b|ma\s+i\b|m['\u2019]i\b|raed\b|(?:yb\s+)?dengis\b|"
    r"sdrager\b|ylerecnis\b|dellac\b|(?:(?:mih|reh)\s+)?deman\b|em\s+s?llac\b|si\s+yhw\b|"
    r"ot\s+etubirt\b|(?:(?:si|saw|eman)\s+)?(?:(?:nosrep\s+)?tcatnoc|tneitap|remotsuc|tneilc|"
    r"eeyolpme|resu|yraicifeneb|redloh)\b|:\s*morf\b|:\s*cc\b|:\s*ot\b|\.?ntta\b|noitnetta\b|"
    r"teem\b|tem\b|si\s+siht\b|(?:ot|htiw)\s+kaeps\b|rof\s+ksa\b)",
    re.IGNORECASE,
)
WEAK_CUE_RE = re.compile(
    r"(?:\bby|\bwith|\band|\bhi|\bhello|\bhey|\bthanks|\bthank\s+you|\bmanager|\bdirector)"
    r"[\s,]*\Z",
    re.IGNORECASE,
)
#: Words that take a person as their object: "starring X", "said X", "told X",
#: "X's wife" — a little more than the weak cues, which also take things.
PERSON_CUE_RE = re.compile(
    r"(?:\bstarring|\bfeaturing|\btold|\basked|\bsaid|\bsays|\bshouted\s+at|"
    r"\bmarried|\bson\s+of|\bdaughter\s+of|\bwife|\bhusband|\bfriend)[\s,]*\Z",
    re.IGNORECASE,
)
AFTER_RE = re.compile(
    r"[ ,]*(?:(?:just|also|never|always|really|still|only|already|often|then)\s+)?"
    r"(?:said|says|told|asked|wrote|is\s+an?\b|is\s+from\b|was\b|and\s+i\b|has\b|had\b|"
    r"who\b|lives|works|thinks|wants|called|replied|shouted|had\s+given|spent\b|will\s+be\b|"
    r",\s+can\s+(?:i|you)|"
    # a verb and a personal pronoun: "Daniel Lombardi listed his", "given Sarah his"
    r"(?:[a-z]+\s+)?(?:his|her|him)\b)",
    re.IGNORECASE,
)
#: A speaker's label at the start of a line of dialogue.
DIALOGUE_RE = re.compile(r":[ ]?\\?[\"\u201c]")
#: What a person has and a company rarely does, after a possessive ("Hleb's address").
POSSESSED_RE = re.compile(
    r"[ ]+(?:(?:new|old|home|own|best|late|ex-?)[ ]+)?(?:address|phone|number|e-?mail|wife|"
    r"husband|son|daughter|mother|father|mom|mum|dad|sister|brother|friend|boyfriend|"
    r"girlfriend|partner|boss|birthday|family|children|kids|parents|uncle|aunt|cousin)\b",
    re.IGNORECASE,
)
THRESHOLD = 1.0
W_KNOWN, W_CUE, W_SHAPE, W_EMAIL = 1.0, 1.0, 1.0, 1.0
W_SHAPE_START, W_POSSESSIVE, W_WEAK, W_AFTER, W_SINGLE, W_LIST = 0.6, 0.5, 0.5, 0.55, 0.45, 0.55
W_PERSON_CUE = 0.6
#: Before an item of an enumeration: "Mark, " or, for the last item, "Mark, Kaylee and ".
LIST_BEFORE_RE = re.compile(
    rf"[{_U}][^\W\d_]+,[ ]\Z|[{_U}][^\W\d_]+,[ ][{_U}][^\W\d_]+,?[ ]and[ ]\Z"
)
#: LIST_BEFORE_RE read backwards (see STRONG_CUE_REV_RE).
LIST_BEFORE_REV_RE = re.compile(
    rf"[ ],[^\W\d_]+[{_U}]|[ ]dna[ ],?[^\W\d_]+[{_U}][ ],[^\W\d_]+[{_U}]"
)
#: After an item: more items, or a pair that is the subject of a plural verb
#: ("Lang and Fowler were").
LIST_AFTER_RE = re.compile(
    rf"(?:,[ ]|[ ]and[ ])[{_U}][^\W\d_]+(?:,|[ ]and[ ]|\.|[ ](?:were|are)\b)"
)
PAIR_BEFORE_RE = re.compile(rf"[{_U}][^\W\d_]+[ ]and[ ]\Z")
PLURAL_AFTER_RE = re.compile(r"[ ](?:were|are)\b")


def _whole_line(text: str, start: int, end: int) -> bool:
    """A run alone on its line (signature blocks, address labels)."""
    return text[end : end + 1] in ("", "\n") and _sentence_start(text, start)


#: Last words of the cue phrases: a C-level ``endswith`` screens the text
#: before a run, and only a hit pays for the regex.
STRONG_TAILS = tuple(
    [
        "is",
        "name",
        "name?",
        "am",
        "i'm",
        "i\u2019m",
        "dear",
        "signed",
        "by",
        "regards",
        "sincerely",
        "called",
        "named",
        "him",
        "her",
        "me",
        "to",
        "person",
        "contact",
        "patient",
        "customer",
        "client",
        "employee",
        "user",
        "beneficiary",
        "holder",
        "was",
        "from",
        "cc",
        "attn",
        "attn.",
        "attention",
        "meet",
        "met",
        "for",
        "with",
    ]
)
WEAK_TAILS = tuple(
    [
        "by",
        "with",
        "and",
        "hi",
        "hello",
        "hey",
        "thanks",
        "you",
        "starring",
        "featuring",
        "told",
        "asked",
        "said",
        "says",
        "at",
        "married",
        "of",
        "wife",
        "husband",
        "friend",
        "manager",
        "director",
    ]
)


def _strong_cue(text: str, start: int) -> bool:
    before = text[max(0, start - 30) : start]
    return before.rstrip(" ,:\t\n").lower().endswith(STRONG_TAILS) and bool(
        STRONG_CUE_REV_RE.match(before[::-1])
    )


#: A capital after a lower-case letter inside a word: "RoutingPolicy",
#: "iPhone" — code and product names; names do it after a few prefixes.
_INNER_CAP_RE = re.compile(r"([^\W\d_]*?[a-z\u00df-\u024f])[A-Z\u00c0-\u00de]")
_NAME_PREFIXES = frozenset(["mc", "mac", "de", "di", "da", "du", "la", "le", "van", "von", "fitz"])


def _identifier(word: str) -> bool:
    """CamelCase that is not a name ("TeamBudget" yes; "McDonald", "DeRose" and
    short degrees such as "PhD" no)."""
    if len(word) < 5 or word[1:].islower():
        return False  # the common case, "Smith": no regex
    m = _INNER_CAP_RE.match(word)
    return m is not None and m.group(1).lower() not in _NAME_PREFIXES


def _org_or_street(nxt: str, gaz: Gazetteer) -> bool:
    """The word after a run makes it an organisation ("Acme Ltd") or a street
    ("Crown Street"); a lower-case street word is prose ("Ojima points out")."""
    lower = nxt.lower()
    return lower in ORG_SUFFIXES or (nxt[:1].isupper() and lower in gaz.street_words)


def _strip_possessive(word: str) -> tuple[str, bool]:
    if word.endswith(("'s", "\u2019s")):
        return word[:-2], True
    return word, False


def _sentence_start(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in " \t\"'\u201c(*-":
        i -= 1
    return i < 0 or text[i] in ".!?\n:;>" or text[i].isdigit()


def find_persons(text: str, gaz: Gazetteer, skip: Sequence[tuple[int, int]] = ()) -> list[Finding]:
    """PERSON findings; runs of capitals wholly inside a ``skip`` span (sorted,
    disjoint: the findings that outrank a name, such as an address's street
    and town) are not looked at, since a name there could not win."""
    if text.islower() or text.isupper():
        return _find_uncased(text, gaz)
    first, last, common, english = gaz.first_names, gaz.last_names, gaz.common_words, gaz.english
    emails: str | None = None
    out: list[Finding] = []
    cache = _single_cache(gaz)
    skip_starts = [s for s, _ in skip]
    # runs and the text between them alternate; the cache lookup runs in C,
    # and runs the lists know to skip ("The", "It's") never reach Python
    parts = CAP_RUN_SPLIT_RE.split(text)
    runs = parts[1::2]
    known_kinds = list(map(cache.get, runs))
    offsets = list(itertools.accumulate(map(len, parts)))
    for r in [i for i, kind in enumerate(known_kinds) if kind != _SKIP]:
        group = runs[r]
        base, run_end = offsets[2 * r], offsets[2 * r + 1]
        if skip_starts:
            k = bisect.bisect_right(skip_starts, base) - 1
            if k >= 0 and skip[k][1] >= run_end:
                continue
        if " " not in group and "." not in group and "-" not in group:
            # one word, the common case: "The", "I", "Paris", "Smith's"
            kind = known_kinds[r]
            if kind is None:
                kind = _single_kind(group, gaz)
                if kind in (_SKIP, _CUED, _ENGLISH) and _vocabulary(group, gaz):
                    cache[group] = kind  # list vocabulary only: no names, places, acronyms
            if kind == _SKIP or (kind in (_CUED, _IDENT) and not _strong_cue(text, base)):
                continue  # grammar, acronyms, identifiers, address words, places
            if kind == _ENGLISH and _sentence_start(text, base) and not _strong_cue(text, base):
                continue  # "Unfortunately", "Written": capitalised by grammar
            if kind > 0:  # a known name, ``kind`` long: only an org or street word after vetoes
                nxt = text[base + len(group) : base + len(group) + 16].lstrip(" ")
                nxt = nxt.split(" ", 1)[0].strip(".,")
                if not _org_or_street(nxt, gaz):
                    out.append(Finding(base, base + kind, "PERSON", 40))
                continue
            words = [(0, len(group), group)]
            gaps = [""]
        else:
            # words and the text before each alternate (split, not a match per word)
            wparts = _WORD_SPLIT_RE.split(group)
            ends = list(itertools.accumulate(map(len, wparts)))
            gaps = wparts[0:-1:2]
            words = list(zip(ends[0:-1:2], ends[1::2], wparts[1::2], strict=True))
        # split after a full stop unless it closes an initial or an honorific
        segments: list[list[tuple[int, int, str]]] = [[]]
        for k, w in enumerate(words):
            if k and gaps[k].startswith("."):
                prev = words[k - 1][2].lower()
                if len(prev) > 1 and prev not in HONORIFICS:
                    segments.append([])
            segments[-1].append(w)
            if w[2].endswith(("'s", "\u2019s")):
                segments.append([])  # "Mitchell's Cautionary Tales": the name ends here
        for seg in segments:
            emails = _score_segment(text, base, seg, gaz, first, last, common, english, emails, out)
    return out


_SKIP, _CUED, _SCORE, _ENGLISH, _IDENT = 0, -1, -2, -3, -4
"""What a one-word run needs (``_single_kind``); a positive kind is a known name."""
_CONTRACTIONS = ("n't", "'m", "'re", "'ll", "'ve", "'d")
_SINGLE_CACHES: dict[int, tuple[Gazetteer, dict[str, int]]] = {}


def _single_cache(gaz: Gazetteer) -> dict[str, int]:
    """One-word run → what to do with it, per word lists: most capitalised
    words of a prompt ("The", "It's", "Street") were seen before, and a dict
    hit is cheaper than the checks. Only words of the lists' vocabulary
    (common, English, street and place words, not names) are kept, so the cache
    never retains a name or other text of a request beyond it. The entry keeps
    the gazetteer alive, so its id is not reused while cached."""
    entry = _SINGLE_CACHES.get(id(gaz))
    if entry is None or len(entry[1]) > 50_000:
        if len(_SINGLE_CACHES) > 8:
            _SINGLE_CACHES.clear()
        entry = _SINGLE_CACHES[id(gaz)] = (gaz, {})
    return entry[1]


def _vocabulary(group: str, gaz: Gazetteer) -> bool:
    lower = group.lower()
    return not group.isupper() and lower not in gaz.places and not gaz.is_name(lower)


def _single_kind(group: str, gaz: Gazetteer) -> int:
    """_SKIP, _CUED (a name only after a strong cue), _SCORE (needs evidence),
    or the length of a known name (without a possessive)."""
    if len(group) == 1:
        return _SKIP  # "I", "A"
    if group.isupper():
        return _CUED  # acronyms
    if _identifier(group):
        return _IDENT  # "RoutingPolicy": a name only after a strong cue, never cached
    first, last = gaz.first_names, gaz.last_names
    lower = group.lower().replace("\u2019", "'")
    if lower.endswith(_CONTRACTIONS):
        return _SKIP  # "Don't", "Isn't", "They're"
    head = lower.split("'", 1)[0]  # "It's", "I'm"
    if (
        head in gaz.common_words
        or lower in gaz.street_words
        or (lower in gaz.places and lower not in first and lower not in last)
    ):
        return _CUED if head in gaz.common_names else _SKIP
    name = _strip_possessive(lower)[0]
    if name not in gaz.english and (name in first or name in last):
        return len(name)
    # an English word needs evidence; at a sentence start only a strong cue
    # (``_score_segment`` strips it there), so that case is decided early
    return _ENGLISH if group.lower() in gaz.english else _SCORE


def _score_segment(
    text: str,
    base: int,
    seg: list[tuple[int, int, str]],
    gaz: Gazetteer,
    first: frozenset[str],
    last: frozenset[str],
    common: frozenset[str],
    english: frozenset[str],
    emails: str | None,
    out: list[Finding],
) -> str | None:
    score = 0.0
    titled = False
    # leading honorifics are evidence, not part of the name
    while seg and seg[0][2].lower() in HONORIFICS:
        seg = seg[1:]
        score = W_CUE
        titled = True
    while seg and seg[0][2].lower() in PARTICLES:
        seg = seg[1:]
    if not seg:
        return emails
    start = base + seg[0][0]
    at_start = _sentence_start(text, start)
    if score < THRESHOLD and _strong_cue(text, start):
        # "my name is Grace Hopper": the cue beats the word lists
        score = W_CUE
        common = english = frozenset()
    # a sentence-initial common word is grammar ("The", "Hello", "Thanks"),
    # but not after a title ("Mr. Young", "Dr. Fields")
    while (
        not titled
        and seg
        and (seg[0][2].lower() in common or (at_start and seg[0][2].lower() in english))
    ):
        if seg[0][2].lower() in ("dear", "hi", "hello", "thanks"):
            score = max(score, W_CUE)
        seg = seg[1:]
        at_start = False
    for k, (_, _, w) in enumerate(seg):
        if titled and k == 0:
            continue
        lower = _strip_possessive(w)[0].lower()
        if lower in gaz.street_words:
            return emails  # "Crown Street": the address recognizer's
        if (lower in common and lower not in PARTICLES) or _identifier(w):
            seg = seg[:k]  # "John Smith Thanks", "Ann Lee PhD": the name ends before
            break
    while seg and seg[-1][2].lower() in PARTICLES:
        seg = seg[:-1]
    if not seg or (len(seg[0][2]) == 1 and all(len(w[2]) == 1 for w in seg)):
        return emails  # nothing left, or only "I" ("Can I", "Hello I")
    end_word, possessive = _strip_possessive(seg[-1][2])
    known = unknown = 0
    for _, _, w in seg:
        lower = _strip_possessive(w)[0].lower()
        if lower in PARTICLES:
            continue
        if w.isupper() and len(w) > 1:
            return emails  # acronyms
        if lower in first or lower in last:
            known += 1
        else:
            unknown += 1
            if lower in english or lower in gaz.places:
                unknown += 1  # weighs against shape evidence
    start = base + seg[0][0]
    end = base + seg[-1][0] + len(end_word)
    after = text[end + (2 if possessive else 0) : end + 40]
    if _org_or_street(after.lstrip(" ").split(" ", 1)[0].strip(".,"), gaz):
        return emails
    if known:
        score += W_KNOWN
    before = text[max(0, start - 30) : start]
    words_n = known + unknown
    if score < THRESHOLD:
        if len(seg) >= 2 and unknown <= len(seg):
            score += W_SHAPE_START if at_start and not _whole_line(text, start, end) else W_SHAPE
        elif len(seg) == 1 and unknown == 1:
            score += W_SINGLE
            if (
                LIST_BEFORE_REV_RE.match(before[::-1])
                or LIST_AFTER_RE.match(after)
                or (PLURAL_AFTER_RE.match(after) and PAIR_BEFORE_RE.search(before))
            ):
                score += W_LIST  # "Malon, Mark, Kaylee and Brandi"
        if possessive:
            score += W_POSSESSIVE
            if POSSESSED_RE.match(after):
                score += W_AFTER
        if before.rstrip(" ,").lower().endswith(WEAK_TAILS):
            if PERSON_CUE_RE.search(before):
                score += W_PERSON_CUE
            elif WEAK_CUE_RE.search(before):
                score += W_WEAK
        if AFTER_RE.match(after):
            score += W_AFTER
        elif before.endswith(", ") and after[:1] in ("!", "?"):
            score += W_AFTER  # a vocative: "Don't go to town, Paul!"
        elif DIALOGUE_RE.match(after) and _sentence_start(text, start):
            score += W_AFTER  # a speaker's label: 'Michaela: "I'm ...'
    if score < THRESHOLD and "@" in text:
        if emails is None:
            # local parts of e-mail-like words ("anna.kowal@..."); a regex that
            # looks for the "@" from every word start is quadratic on long words
            emails = _local_parts(text)
        if any(len(w[2]) > 2 and w[2].lower() in emails for w in seg):
            score += W_EMAIL
    if score >= THRESHOLD and words_n <= 5:
        out.append(Finding(start, end, "PERSON", 40))
    return emails


def _local_parts(text: str) -> str:
    """The part before the first "@" of each whitespace-separated word that has
    one, lower-cased and joined by spaces (``text.split()`` would visit every
    word; a text has few "@")."""
    parts = []
    pos, size = 0, len(text)
    while (at := text.find("@", pos)) >= 0:
        start = at
        while start > pos and not text[start - 1].isspace():
            start -= 1
        parts.append(text[start:at])
        pos = at
        while pos < size and not text[pos].isspace():
            pos += 1
    return " ".join(parts).lower()


def _find_uncased(text: str, gaz: Gazetteer) -> list[Finding]:
    """Lower- or upper-cased text: known names that are not English words, and
    one or two words right after a strong cue ("my name is", "named him") or
    a title ("mr. freeman")."""
    first, last, english = gaz.first_names, gaz.last_names, gaz.english
    out: list[Finding] = []
    prev_end = -1
    cue_left = 0
    for m in WORD_RE.finditer(text):
        word, _ = _strip_possessive(m.group())
        lower = word.lower()
        cued = cue_left > 0 and lower not in english and len(lower) > 2
        cue_left -= 1
        if not cued and (
            len(lower) < 3 or lower in english or not (lower in first or lower in last)
        ):
            if lower in HONORIFICS or _strong_cue(text, m.end() + 1):
                cue_left = 2  # "my name is ...", "mr. ..."
            continue
        if not cued:
            cue_left = 0
        end = m.start() + len(word)
        if out and m.start() - prev_end == 1 and text[prev_end] == " ":
            out[-1] = Finding(out[-1].start, end, "PERSON", 40)
        else:
            out.append(Finding(m.start(), end, "PERSON", 40))
        prev_end = end
    return out
