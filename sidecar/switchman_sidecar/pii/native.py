"""The compiled word-list recognizers (``switchman_native``, Rust), when installed.

The Python modules (``names``, ``address``) are the reference: the compiled
scanner gives the same findings for every text (tests/pii/test_native.py) and
only makes them faster (docs/pii.md, "Speed"). Without ``switchman_native``
(``pip install`` without cargo) everything runs in Python.

The scanner needs the interpreter's own character properties (``str.isalpha``,
``isupper``, ``lower`` ...), not Rust's: the two follow different Unicode
versions. They are read once per process for the Basic Multilingual Plane
(~50 ms) and asked for per code point above it (rare in prompts).
"""

from __future__ import annotations

import functools
import sys
import threading
import unicodedata
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from switchman_sidecar.compiled import native as _compiled
from switchman_sidecar.pii.gazetteer import Gazetteer, word_lists_text
from switchman_sidecar.pii.patterns import (
    DIGIT_RE,
    _emails,
    _ip6s,
    _number_spans,
    _phone_ok,
    _possible_number,
)
from switchman_sidecar.pii.spans import Finding
from switchman_sidecar.pii.validators import iban_ok, ip_ok

__all__ = ["NativeScanner", "native_scanner", "process_scanner"]

PiiScanner = _compiled.PiiScanner if _compiled is not None else None

_PREDICATES: tuple[Callable[[str], bool], ...] = (
    str.isalpha,
    str.isdecimal,
    str.isdigit,
    str.isnumeric,
    str.isspace,
    str.isupper,
    str.islower,
    lambda c: unicodedata.category(c) == "Lt",
)
"""Bit k of a code point's flags (native/src/pii/text.rs: ALPHA .. TITLE)."""
_LOWER_PY = 0xFFFFFFFF
#: ``Finding`` from a 4-tuple without NamedTuple's Python-level ``__new__``
#: (which only calls this).
_finding: Callable[[tuple[int, int, str, int]], Finding] = functools.partial(tuple.__new__, Finding)
#: The entity of each code ``PiiScanner.scan`` gives a finding it added.
_ADDED = {-1: "STREET_ADDRESS", -2: "PERSON", -3: "LOCATION"}
_SIGMA = "\u03a3"


def _flags(c: str) -> int:
    return sum(1 << k for k, pred in enumerate(_PREDICATES) if pred(c))


def _astral(c: str) -> tuple[int, str]:
    return _flags(c), c.lower()


@functools.cache
def _bmp_tables() -> tuple[bytes, bytes]:
    """Flags (one byte per code point) and simple lower-case mappings (u32
    little-endian; ``_LOWER_PY`` where Python's ``lower`` gives several code
    points or depends on the context, as the final sigma does)."""
    chars = "".join(map(chr, range(0x10000)))
    # each predicate as 0/1 bytes; shifting the whole number by k < 8 moves
    # each byte's bit 0 to its bit k, so the sum sets the bits per byte
    total = sum(
        int.from_bytes(bytes(map(pred, chars)), "little") << k for k, pred in enumerate(_PREDICATES)
    )
    flags = total.to_bytes(0x10000, "little")
    lower = array("I", (ord(lc) if len(lc) == 1 else _LOWER_PY for lc in map(str.lower, chars)))
    lower[ord(_SIGMA)] = _LOWER_PY
    if sys.byteorder == "big":  # pragma: no cover
        lower.byteswap()
    return flags, lower.tobytes()


class NativeScanner:
    """The compiled scanner for one gazetteer; methods return None when the
    text has to be scanned in Python (lone surrogates, no UTF-8 form)."""

    def __init__(self, gaz: Gazetteer | bytes) -> None:
        """From the lists, or from their text form (``gazetteer.encode``: parsed in
        Rust, no Python copy; ``ValueError`` when it is not that form)."""
        flags, lower = _bmp_tables()
        assert PiiScanner is not None
        checks = (_phone_ok, _possible_number, iban_ok, ip_ok)
        if isinstance(gaz, bytes):
            self._scanner: Any = PiiScanner.from_text(gaz, flags, lower, _astral, checks)
            return
        self._scanner = PiiScanner(
            gaz.first_names,
            gaz.last_names,
            gaz.common_words,
            gaz.english,
            gaz.street_words,
            gaz.places,
            gaz.place_first_words,
            gaz.common_names,
            flags,
            lower,
            _astral,
            checks,
        )

    def list_sizes(self) -> dict[str, int]:
        """Words per list, as the compiled scanner holds them."""
        return dict(self._scanner.list_sizes())

    def scan(
        self, text: str, found: list[Finding], *, names: bool, addresses: bool
    ) -> list[Finding] | None:
        """``Detector.scan`` from the structured and custom findings on: the
        word-list recognizers, then overlaps resolved (sorted, as
        ``resolve_overlaps`` returns them)."""
        kept = self._scanner.scan(text, [(f.start, f.end, f.rank) for f in found], names, addresses)
        if kept is None:
            return None
        out = [found[c] if c >= 0 else _finding((s, e, _ADDED[c], r)) for s, e, r, c in kept]
        out.sort()  # already by start: one pass
        return out

    def structured(self, text: str) -> list[Finding] | None:
        """``patterns.find_structured`` with the number-led candidates found
        and validated in Rust (e-mail and IPv6 stay in Python)."""
        out: list[Finding] = []
        if "@" in text:
            out.extend(_emails(text))
        if DIGIT_RE.search(text) is None:
            return out
        spans = self._scanner.structured(text)
        if spans is None:
            return None
        ibans, cards, ip4s, ssns, phones = spans
        out.extend([_finding((s, e, "IBAN_CODE", 12)) for s, e in ibans])
        out.extend([_finding((s, e, "CREDIT_CARD", 14)) for s, e in cards])
        out.extend([_finding((s, e, "IP_ADDRESS", 16)) for s, e in ip4s])
        out.extend(_ip6s(text))
        out.extend([_finding((s, e, "US_SSN", 18)) for s, e in ssns])
        out.extend([_finding((s, e, "PHONE_NUMBER", 20)) for s, e in phones])
        return out

    def number_spans(self, text: str) -> list[list[tuple[int, int]]]:
        """``patterns._number_spans``, compiled (in Python for lone surrogates)."""
        spans: list[list[tuple[int, int]]] | None = self._scanner.number_spans(text)
        return _number_spans(text) if spans is None else spans

    def find_persons(self, text: str, skip: Sequence[tuple[int, int]]) -> list[Finding] | None:
        spans = self._scanner.find_persons(text, list(skip))
        if spans is None:
            return None
        return [Finding(s, e, "PERSON", 40) for s, e in spans]

    def find_addresses(self, text: str, barriers: list[tuple[int, int]]) -> list[Finding] | None:
        spans = self._scanner.find_addresses(text, barriers)
        if spans is None:
            return None
        return [Finding(s, e, "STREET_ADDRESS", 30) for s, e in spans]

    def find_locations(self, text: str, taken: list[tuple[int, int]]) -> list[Finding] | None:
        spans = self._scanner.find_locations(text, taken)
        if spans is None:
            return None
        return [Finding(s, e, "LOCATION", 45) for s, e in spans]


_LOCK = threading.Lock()
_SCANNERS: dict[int, tuple[Gazetteer, NativeScanner]] = {}


def native_scanner(gaz: Gazetteer) -> NativeScanner | None:
    """The scanner for these word lists (built once per lists, ~0.1 s; kept
    with the lists, so their id is not reused while cached), or None without
    ``switchman_native``."""
    if PiiScanner is None:
        return None
    entry = _SCANNERS.get(id(gaz))
    if entry is None:
        with _LOCK:
            entry = _SCANNERS.get(id(gaz))
            if entry is None:
                if len(_SCANNERS) > 8:
                    _SCANNERS.clear()
                entry = _SCANNERS[id(gaz)] = (gaz, NativeScanner(gaz))
    return entry[1]


_PROCESS: NativeScanner | None = None


def process_scanner() -> NativeScanner | None:
    """The scanner over the process-wide word lists (built once, thread-safe), or
    None without ``switchman_native``.

    It parses the lists' cache file itself, so no Python copy of them is made for
    it (~10 MiB less per sidecar, at start-up's peak too); the Python path loads
    its own when it first needs it (``Detector.gaz``).
    """
    global _PROCESS
    if PiiScanner is None:
        return None
    if _PROCESS is None:
        with _LOCK:
            if _PROCESS is None:
                try:
                    _PROCESS = NativeScanner(word_lists_text())
                except ValueError:  # a damaged cache file: rebuilt, never trusted
                    _PROCESS = NativeScanner(word_lists_text(rebuild=True))
    return _PROCESS
