"""The compiled scanner (switchman_native) against the Python reference: the
same findings for every text of the shared data, the 4 KB bench prompts,
ordinary LLM queries and generated texts (random Unicode, names beside
punctuation, cased and uncased, huge, empty). The test venv must have the
compiled module: these tests fail, not skip, without it. The Python fallback
(no switchman_native) is run in a subprocess."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from switchman_sidecar.pii.address import find_addresses, find_locations
from switchman_sidecar.pii.detector import CustomRecognizer, Detector
from switchman_sidecar.pii.gazetteer import Gazetteer, load_gazetteer
from switchman_sidecar.pii.names import find_persons
from switchman_sidecar.pii.native import NativeScanner, native_scanner
from switchman_sidecar.pii.patterns import _number_spans, find_structured
from switchman_sidecar.pii.spans import resolve_overlaps

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PII_DATA = SHARED / "pii"
QUERIES = SHARED / "routing" / "llmrouter" / "default_query_train.jsonl"


def test_the_compiled_module_is_installed() -> None:
    from switchman_native._native import PiiScanner  # noqa: F401  (no skip: must be there)

    assert native_scanner(load_gazetteer()) is not None


@cache
def _gaz() -> Gazetteer:
    return load_gazetteer()


@cache
def _scanner() -> NativeScanner:
    scanner = native_scanner(_gaz())
    assert scanner is not None, "switchman_native is not installed in the test venv"
    return scanner


@cache
def _shared_texts() -> tuple[str, ...]:
    files = sorted(PII_DATA.glob("*.json"))
    assert files, f"no labelled data in {PII_DATA}"
    texts = [s["full_text"] for f in files for s in json.loads(f.read_text("utf-8"))]
    # the bench's 4 KB prompts: the samples joined
    prompts, cur = [], ""
    for t in texts:
        if len(cur) + len(t) > 4096:
            prompts.append(cur)
            cur = ""
        cur += t + "\n\n"
    return tuple(texts + prompts)


@cache
def _queries() -> tuple[str, ...]:
    lines = QUERIES.read_text("utf-8").split("\n")
    queries = [json.loads(line)["query"] for line in lines if line]
    return tuple(queries[:3000])


#: Characters that meet the scan's edge cases: case mappings Python and Rust
#: disagree on or that change length (İ, final sigma, Kelvin sign, long s,
#: dotless i), apostrophes, particles' neighbours, digits of other scripts,
#: characters above the BMP, separators, "@".
_ODD = (
    "\u0130\u0131\u017f\u212aK\u03a3\u03c3\u03c2\xc5\u1e9e\xdf\u01c5\u1f88\u2019\u201c\"'-.@,:;"
    "!?()*> \x09\x0a\xa0\u2028\x1c\u0301\u0663\xb2\xbd\u216b\u24b6\U0001d400\U0001d41a"
    "\U0001f600\U00010400\U00010428\xd6\xc9\xf1\xe7\u0141\u0391\u0392\u0393\u0414\u0416"
    "\u042f\u0430\u0431\u0432"
)
_WORDS = (
    "Anna", "Kowalski", "van", "der", "Berg", "de", "la", "Mr", "Dr.", "Mrs", "O'Neil", "McDonald",
    "RoutingPolicy", "iPhone", "Smith's", "Jones\u2019s", "The", "It's", "Don't", "I", "A",
    "Street",
    "Crown", "Paris", "London", "New", "York", "Ltd", "Inc", "my", "name", "is", "dear", "said",
    "and", "were", "told", "with", "hi", "thanks", "Mark", "Kaylee", "Brandi", "Grace", "Will",
    "ANNA", "SMITH", "anna", "smith", "ÖZİL", "Σοφία", "ΣΟΦΊΑΣ", "Иван", "Kelvin", "Ştefan",
    "patient", "contact", "Hello", "Unfortunately", "PhD", "John-Paul", "Jean-de", "Wiśniewski",
    "email", "anna.kowalski@example.com", "12", "Apt.", "his", "her", "address", "wife", "Paul!",
    "12B", "4/7", "221b", "98547", "90210-1234", "SW1A", "1AA", "K1A", "0B1", "Suite", "P.O.",
    "Box", "PSC", "Rue", "ul.", "Lubartowska", "Bahnhofstrasse", "Koskikatu", "Crown Street",
    "lives at", "my address is", "zip code", "postal code:", "shipped to", "corner of",
    "\u0663\u0664", "Road.", "Ave.", "floor", "the", "of", "Berlin", "Texas", "CA", "NY",
    "+1 555 0100", "4111 1111 1111 1111", "078-05-1121", "10.0.0.1", "!", "?", ";",
    "in", "from", "near", "visiting", "city of", "Where:", "via", "San", "Jose", "Rio de Janeiro",
    "Kalatsova", "Fala", "Dornberk", "Buenos Aires", "Costa Rica", "United States", "UK",
)  # fmt: skip


def _generated() -> list[str]:
    rng = random.Random(7)
    out = ["", "A", "Anna", " ", "@", "Σ", "İ", "Mr. Smith", "anna smith", "ANNA SMITH"]
    for _ in range(3000):
        n = rng.randint(1, 14)
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.6:
                w = rng.choice(_WORDS)
            elif r < 0.85:
                w = "".join(rng.choice(_ODD) for _ in range(rng.randint(1, 4)))
            else:
                w = "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 5)))
            parts.append(w)
            parts.append(rng.choice((" ", " ", " ", ", ", ". ", "-", "\n", ": ", "'s ", "")))
        text = "".join(parts)
        if rng.random() < 0.1:
            text = text.lower()
        elif rng.random() < 0.1:
            text = text.upper()
        out.append(text)
    # fully random code points (lone surrogates excluded: those stay in Python)
    for _ in range(300):
        out.append(
            "".join(
                chr(c) if not 0xD800 <= (c := rng.randint(0, 0x10FFFF)) <= 0xDFFF else " "
                for _ in range(rng.randint(0, 60))
            )
        )
    return out


def _huge() -> str:
    rng = random.Random(3)
    return " ".join(rng.choice(_WORDS) for _ in range(60_000))


def _addresses_equal(texts: list[str] | tuple[str, ...]) -> None:
    gaz, scanner = _gaz(), _scanner()
    for text in texts:
        # no barriers, and the structured findings the detector passes
        for hard in ([], [(f.start, f.end) for f in find_structured(text)]):
            assert scanner.find_addresses(text, hard) == find_addresses(text, gaz, hard), text


@pytest.mark.parametrize("part", ["shared", "queries", "generated", "huge"])
def test_addresses(part: str) -> None:
    _addresses_equal(_texts(part))


def _locations_equal(texts: list[str] | tuple[str, ...]) -> None:
    gaz, scanner = _gaz(), _scanner()
    reference = Detector(gazetteer=gaz, native=False)
    for text in texts:
        # nothing taken, and what the detector has found before places
        taken = [(f.start, f.end) for f in reference.scan(text) if f.entity != "LOCATION"]
        for spans in ([], taken):
            assert scanner.find_locations(text, spans) == find_locations(text, gaz, spans), text


@pytest.mark.parametrize("part", ["shared", "queries", "generated", "huge"])
def test_locations(part: str) -> None:
    _locations_equal(_texts(part))


def _number_texts() -> list[str]:
    """Digits, separators and the letters of phone extensions at random:
    every choice of the number patterns (groups, parentheses, "ext.")."""
    rng = random.Random(5)
    alphabet = "0123456789 +-().:/xXeEtTnNsSiIoOaAbBzZ@_\u0663\u0130\u017f\n"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(20_000)]


_NUMBER_CONTEXT = (
    "call", "phone:", "tel.", "mobile", "cell", "fax", "whatsapp", "dial", "my number is",
    "contact", "text me at", "order number", "licence number is", "zip code:", "account #",
    "invoice", "id:", "Apt", "apt.", "Suite", "box", "ssn", "social security", "taxpayer",
    "ISBN", "born", "in", "(office)", "is my mobile", ", is my home", "x", "ext.", "extension",
    "@", "at", "\u0130", "\n", "\t", "-", "/", ":", "(", ")", "+",
)  # fmt: skip
_NUMBER_VALUES = (
    "+44 20 7946 0958", "+1 (555) 010-0199", "(+30) 6955 116979", "+44(0)20 7946 0958",
    "030/1234567", "06-43/189 8540", "555 0199", "0503204941", "61 51 81", "33 93 31",
    "638 2229", "1200-195", "1998-2002", "(1983-1987", "3/23/1940", "2019-05-17", "1.2.3.4000",
    "978-0-14-241050-9", "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
    "3782 822463 10005", "001-395-459-2591", "078-05-1120", "219-09-9999", "536-22-1234",
    "536 22 1234", "536.22.1234", "666-12-3456", "GB82 WEST 1234 5698 7654 32",
    "GB82WEST12345698765432", "DE89 3704 0044 0532 0130 00 for the rent", "10.0.0.1",
    "192.168.001.1", "256.1.1.1", "01.2.3.4", "2001:db8::1", "fe80::1%eth0", "12:30:45",
    "555-0100 x 12", "555 0100 ext. 1234", "(555) 0100", "12", "98547", "\u0663\u0664\u0665",
)  # fmt: skip


def _structured_texts() -> list[str]:
    """Numbers of every kind with the words that decide them around them."""
    rng = random.Random(9)
    out = []
    for _ in range(6000):
        parts = []
        for _ in range(rng.randint(1, 6)):
            if rng.random() < 0.5:
                parts.append(rng.choice(_NUMBER_CONTEXT))
            else:
                value = rng.choice(_NUMBER_VALUES)
                if rng.random() < 0.3:  # a digit changed: checksums fail
                    k = rng.randrange(len(value))
                    if value[k].isdigit():
                        value = value[:k] + str(rng.randint(0, 9)) + value[k + 1 :]
                parts.append(value)
        out.append("".join(p + rng.choice((" ", "", ", ", ": ", "\n", ". ")) for p in parts))
    return out


@pytest.mark.parametrize("part", ["shared", "queries", "generated", "numbers", "structured"])
def test_structured(part: str) -> None:
    scanner = _scanner()
    texts = {"numbers": _number_texts, "structured": _structured_texts}.get(part)
    found = 0
    for text in texts() if texts is not None else _texts(part):
        want = find_structured(text)
        assert scanner.structured(text) == want, text
        found += len(want)
    assert found > 0


@pytest.mark.parametrize("part", ["shared", "queries", "generated", "numbers", "huge"])
def test_number_spans(part: str) -> None:
    scanner = _scanner()
    texts = _number_texts() if part == "numbers" else _texts(part)
    hits = 0
    for text in texts:
        want = [list(map(tuple, spans)) for spans in _number_spans(text)]
        assert scanner.number_spans(text) == want, text
        hits += sum(map(len, want))
    assert hits > 0


def _texts(part: str) -> list[str] | tuple[str, ...]:
    if part == "shared":
        return _shared_texts()
    if part == "queries":
        return _queries()
    if part == "generated":
        return _generated()
    return [_huge()]


def _persons_equal(texts: list[str] | tuple[str, ...]) -> None:
    gaz, scanner = _gaz(), _scanner()
    reference = Detector(gazetteer=gaz, native=False)
    for text in texts:
        # with nothing to skip, and with what the detector skips
        skips: list[list[tuple[int, int]]] = [[]]
        if len(text) >= 2:
            found = reference.scan(text)
            skips.append([(f.start, f.end) for f in resolve_overlaps(found) if f.rank < 40])
        for skip in skips:
            want = find_persons(text, gaz, skip)
            got = scanner.find_persons(text, skip)
            assert got == want, text


def test_persons_on_the_shared_data() -> None:
    _persons_equal(_shared_texts())


def test_persons_on_ordinary_queries() -> None:
    _persons_equal(_queries())


def test_persons_on_generated_texts() -> None:
    _persons_equal(_generated())


def test_persons_on_a_huge_text() -> None:
    _persons_equal([_huge()])


def test_lone_surrogates_are_left_to_python() -> None:
    assert _scanner().find_persons("Anna \ud800 Smith", []) is None
    text = "Dear Anna Kowalski \udc00, thanks"
    assert Detector(gazetteer=_gaz()).scan(text) == Detector(gazetteer=_gaz(), native=False).scan(
        text
    )


def test_the_default_detector_keeps_one_copy_of_the_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sidecar's detectors (process-wide lists) scan with the compiled copy
    only; the Python lists load when a text needs the Python path, and then the
    findings are the reference's."""
    from switchman_sidecar.pii import gazetteer, native

    monkeypatch.setattr(gazetteer, "_LOADED", None)
    monkeypatch.setattr(native, "_PROCESS", None)
    gazetteer.preload_gazetteer().join(timeout=60)
    assert native._PROCESS is not None and gazetteer._LOADED is None
    detector = Detector()
    reference = Detector(gazetteer=_gaz(), native=False)
    monkeypatch.setattr(gazetteer, "_LOADED", None)  # _gaz() loaded them for the reference
    for text in _shared_texts()[:200]:
        assert detector.scan(text) == reference.scan(text), text
    assert gazetteer._LOADED is None  # not needed so far
    text = "Dear Anna Kowalski \udc00, I live at 12 Crown Street."
    assert detector.scan(text) == reference.scan(text)
    assert gazetteer._LOADED is not None  # the Python path needed them


@pytest.mark.parametrize("part", ["shared", "queries", "generated"])
def test_detector_findings_are_the_same(part: str) -> None:
    texts = {"shared": _shared_texts(), "queries": _queries(), "generated": _generated()}[part]
    native = Detector(gazetteer=_gaz())
    reference = Detector(gazetteer=_gaz(), native=False)
    assert native._compiled() is not None
    for text in texts:
        assert native.scan(text) == reference.scan(text), text


def test_detector_with_custom_entities_is_the_same() -> None:
    """Custom findings go through the compiled overlap resolution: two
    entities on the same spans (same rank: the first listed wins), one that
    overlaps names and addresses."""
    custom = [
        CustomRecognizer.build("EMPLOYEE_ID", r"\b[A-Z][a-z]+\b", "", ()),
        CustomRecognizer.build("CAPITALISED", r"\b[A-Z][a-z]+\b", "", ()),
        CustomRecognizer.build("HOUSE", r"\d+ [A-Z]\w+", "", ("at", "address")),
    ]
    native = Detector(custom, gazetteer=_gaz())
    reference = Detector(custom, gazetteer=_gaz(), native=False)
    for text in _shared_texts()[:400] + tuple(_generated()[:400]):
        assert native.scan(text) == reference.scan(text), text


def test_the_python_fallback_without_the_compiled_module() -> None:
    """``pip install`` without cargo: no switchman_native, the Python scan."""
    code = (
        "import sys; sys.modules['switchman_native'] = None\n"
        "from switchman_sidecar.pii import native\n"
        "from switchman_sidecar.pii.detector import Detector\n"
        "from switchman_sidecar.pii.gazetteer import load_gazetteer\n"
        "assert native.PiiScanner is None and native.native_scanner(load_gazetteer()) is None\n"
        "d = Detector()\n"
        "print([tuple(f) for f in d.scan('Dear Anna Kowalski, I live at 12 Crown Street.')])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    want = Detector(gazetteer=_gaz(), native=False).scan(
        "Dear Anna Kowalski, I live at 12 Crown Street."
    )
    assert out.strip() == str([tuple(f) for f in want])
    assert any(f.entity == "PERSON" for f in want)


def test_the_compiled_word_lists_are_the_python_ones() -> None:
    """The port carries copies of the recognizers' fixed word lists; an edit of
    one side alone must fail here, even for a word no test text holds."""
    import importlib

    from switchman_native._native import pii_word_lists

    lists = pii_word_lists()
    assert len(lists) >= 12
    for name, words in lists:
        module, _, attr = name.partition(".")
        original = getattr(importlib.import_module(f"switchman_sidecar.pii.{module}"), attr)
        if isinstance(original, frozenset | set):
            assert set(words) == original, name
        else:
            assert tuple(words) == tuple(original), name
