"""Word lists for names and places, read from Faker's locale providers.

Without an NER model, PERSON and STREET_ADDRESS need lists: Faker (maintained,
pure Python, MIT) carries first and last names for ~80 locales, street
prefixes and suffixes in many languages, countries, states and real city
lists, plus common English words (lorem list, parts of speech, job titles,
company phrases) that veto names which are also ordinary words ("will",
"may", "long") and keep capitalised prose from passing for a name. Deriving
the lists imports every locale (~1 s, more on a busy machine), so the result
is kept in a text file under the user cache directory, keyed by Faker's
version (~60 ms to read); ``load_gazetteer`` loads once per process, and
``preload_gazetteer`` does it in a thread. The compiled scanner reads the same
text itself (``word_lists_text``), so a sidecar with it keeps no Python copy."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Gazetteer",
    "build_gazetteer",
    "cache_path",
    "decode",
    "encode",
    "load_gazetteer",
    "preload_gazetteer",
    "word_lists_text",
]

#: Street words Faker's formats use without listing them, or that are common
#: abbreviations in real addresses.
EXTRA_STREET_WORDS = (
    "st", "st.", "rd", "rd.", "ave", "ave.", "av.", "blvd", "blvd.", "ln", "ln.", "dr", "dr.",
    "ct", "ct.", "pl", "pl.", "sq", "hwy", "pkwy", "ul.", "ulica", "rue", "via", "calle",
    "rua", "avenida", "strasse", "straße", "gasse", "weg", "platz", "allee", "road", "street",
    "avenue", "lane", "drive", "court", "place", "square", "way", "close", "crescent",
    "terrace", "highway", "boulevard", "estrada", "carrera", "ctra.", "camino", "piazza",
    "piazzetta", "viale", "vicolo", "corso", "largo", "chemin", "impasse", "quai", "cours",
)  # fmt: skip

#: Names that are also frequent English words in capitalised positions
#: (sentence starts, titles); Faker's own word list covers most of the rest.
EXTRA_COMMON = (
    "i", "a", "an", "the", "my", "me", "we", "us", "he", "she", "it", "you", "they", "his",
    "her", "our", "hi", "hello", "dear", "thanks", "thank", "please", "yes", "no", "ok",
    "okay", "bot", "user", "name", "address", "card", "bank", "street", "road", "city",
    "mr", "mrs", "ms", "dr", "sir", "madam", "monday", "tuesday", "wednesday", "thursday",
    "friday", "saturday", "sunday", "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december", "god", "christmas",
    "english", "french", "german", "spanish", "internet", "email", "phone", "apt", "suite",
    "unit", "box", "north", "south", "east", "west", "new", "will", "can", "love", "joy",
    "hope", "grace", "faith", "rose", "summer", "winter", "spring", "autumn", "king",
    "queen", "prince", "princess", "royal", "lord", "lady", "saint", "st", "general",
    "art", "bill", "mark", "guy", "long", "young", "little", "price", "rich", "hill",
    "wood", "stone", "day", "white", "black", "brown", "green", "gray", "grey", "sun",
    "star", "moon", "sky", "ocean", "river", "lake", "park", "song", "songs", "list",
    "best", "top", "ltd", "inc", "co", "llc", "corp", "company", "group", "bot:", "office",
    "here", "there", "what", "when", "where", "why", "how", "who", "which", "this", "that",
    "these", "those", "is", "are", "was", "were", "be", "been", "am", "do", "does", "did",
    "have", "has", "had", "not", "and", "or", "but", "if", "so", "as", "at", "by", "for",
    "from", "in", "into", "of", "on", "to", "with", "about", "after", "before", "over",
    "just", "also", "very", "more", "most", "much", "many", "some", "any", "all", "every",
    "one", "two", "three", "first", "last", "next", "good", "great", "well", "man",
    "woman", "people", "world", "time", "year", "home", "work", "job", "team", "account",
    "number", "code", "zip", "credit", "social", "security", "ssn", "iban", "ip", "id",
    "answer", "question", "music", "album", "band", "film", "movie", "book", "story",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Gazetteer:
    first_names: frozenset[str]
    last_names: frozenset[str]
    common_words: frozenset[str]
    """Lower-case English words that veto a name match on their own."""
    english: frozenset[str]
    """A wider list of English words (~3,000: Faker's lorem, parts of speech, job
    titles, company phrases): an unknown capitalised word that is one of them is
    not taken for a name on its shape alone."""
    street_words: frozenset[str]
    """Lower-case street prefixes/suffixes ("street", "rue", "ul.", "katu")."""
    places: frozenset[str]
    """Lower-case countries, states, provinces and cities (single or multi-word)."""
    place_first_words: frozenset[str]
    """First words of multi-word places, to know when to look further."""

    common_names: frozenset[str] = frozenset()
    """Common words that are also names ("grace", "will"): a cue such as "my
    name is" makes them names; only these are worth checking for one."""

    def is_name(self, lower: str) -> bool:
        return lower in self.first_names or lower in self.last_names


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        yield from (k for k in value if isinstance(k, str))
    elif isinstance(value, (tuple, list)):
        for v in value:
            if isinstance(v, str):
                yield v
            elif isinstance(v, tuple) and v and isinstance(v[-1], str):
                yield v[-1]  # (code, name) pairs


def _providers(package: str) -> Iterable[Any]:
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        try:
            yield importlib.import_module(f"{package}.{info.name}").Provider
        except (ImportError, AttributeError):  # pragma: no cover - a broken locale
            continue


def _latin(word: str) -> bool:
    """Names in scripts we tokenise (Latin, Greek, Cyrillic): skip CJK/Arabic/Indic lists."""
    return all((c.isalpha() or c in "-'\u2019 .") and ord(c) < 0x0530 for c in word)


_LOCK = threading.Lock()
_LOADED: Gazetteer | None = None
_FIELDS = (
    "first_names", "last_names", "common_words", "english", "street_words", "places",
    "place_first_words", "common_names",
)  # fmt: skip
_CACHE_VERSION = 4
"""Bump when the derivation below or the file's form changes, so stale cache files
are ignored."""


def encode(gaz: Gazetteer) -> bytes:
    """The lists as text (the cache file, and what the compiled scanner parses): a
    line ``\\t<list>`` opens each list, one word per line follows, ``\\tend`` closes.
    A word holding a tab or a line break could not be told apart: none is written
    (``build_gazetteer`` makes none)."""
    lines: list[str] = []
    for f in _FIELDS:
        lines.append(f"\t{f}")
        lines.extend(w for w in sorted(getattr(gaz, f)) if w and "\t" not in w and "\n" not in w)
    lines.append("\tend\n")
    return "\n".join(lines).encode("utf-8")


def decode(data: bytes) -> Gazetteer:
    """``encode``'s inverse; ``ValueError`` for anything else (a truncated file)."""
    lists: dict[str, set[str]] = {}
    current: set[str] | None = None
    lines = data.decode("utf-8").split("\n")
    while lines and not lines[-1]:  # blank lines after the end, as the compiled parser
        lines.pop()
    if not lines or lines[-1] != "\tend":
        raise ValueError("word lists: incomplete")
    for line in lines[:-1]:
        if line.startswith("\t"):
            name = line[1:]
            if name not in _FIELDS or name in lists:
                raise ValueError(f"word lists: unexpected list {name!r}")
            current = lists[name] = set()
        elif line:
            if current is None:
                raise ValueError("word lists: a word before the first list")
            current.add(line)
    if len(lists) != len(_FIELDS):
        raise ValueError("word lists: incomplete")
    return Gazetteer(**{f: frozenset(lists[f]) for f in _FIELDS})


def cache_path() -> Path:
    """Per-user cache file, keyed by Faker's version and our derivation's version."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    version = importlib.metadata.version("faker")
    return Path(root) / "switchman" / f"pii-words-faker{version}-v{_CACHE_VERSION}.txt"


def load_gazetteer() -> Gazetteer:
    """The process-wide word lists (thread-safe, loaded once).

    Reading Faker's ~80 locale modules takes about a second, so the derived
    lists are kept in a compact JSON file under the user cache directory
    (~0.1 s to read); a missing, stale or unreadable cache is rebuilt, and an
    unwritable cache directory only costs the slow path each start.
    """
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    with _LOCK:
        if _LOADED is None:
            _LOADED = _from_cache() or _build_and_cache()
        return _LOADED


def word_lists_text(*, rebuild: bool = False) -> bytes:
    """The lists as ``encode`` writes them, for the compiled scanner (which parses
    them itself): the cache file's bytes, unread by Python (``rebuild``: built,
    cached and encoded afresh, for a cache file the scanner refused)."""
    loaded = _LOADED
    if loaded is not None:
        return encode(loaded)
    if not rebuild:
        try:
            return cache_path().read_bytes()
        except OSError:
            pass
    return encode(_build_and_cache())


def preload_gazetteer() -> threading.Thread:
    """Load the lists (and build the compiled scanner) in a daemon thread (call
    where a PII policy first shows up, so the event loop does not wait for
    them); ``load_gazetteer`` then returns at once or waits for the same load."""
    thread = threading.Thread(target=_load_and_compile, name="pii-gazetteer", daemon=True)
    thread.start()
    return thread


def _load_and_compile() -> None:
    """The compiled scanner when switchman_native is installed (it copies the
    lists and reads the interpreter's character tables, ~0.1-0.3 s), else the
    lists in Python: neither waits for the first request."""
    # here, not at the top: native imports this module
    from switchman_sidecar.pii.native import process_scanner

    if process_scanner() is None:
        load_gazetteer()


def _from_cache() -> Gazetteer | None:
    try:
        return decode(cache_path().read_bytes())
    except (OSError, ValueError):
        return None


def _build_and_cache() -> Gazetteer:
    """Build, write the cache file, and return the lists as a read gives them."""
    data = encode(build_gazetteer())
    try:
        path = cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        for stale in path.parent.glob("pii-words-*"):
            if stale != path and not stale.name.endswith(".tmp"):
                stale.unlink(missing_ok=True)  # lists of an older Faker or derivation
    except OSError:
        pass  # read-only home: the lists still work, only the next start is slower
    return decode(data)


def _english_words(common: set[str]) -> set[str]:
    lorem = importlib.import_module("faker.providers.lorem.en_US").Provider
    words = {w.lower() for w in lorem.word_list}
    for group in getattr(lorem, "parts_of_speech", {}).values():
        words.update(w.lower() for w in group)
    company = importlib.import_module("faker.providers.company").Provider
    for attr in ("catch_phrase_words", "bsWords"):
        for group in getattr(company, attr, ()):
            words.update(w.lower() for w in group)
    jobs = importlib.import_module("faker.providers.job.en_US").Provider
    for job in getattr(jobs, "jobs", ()):
        words.update(w.lower() for w in _WORD.findall(job) if len(w) > 2)
    return words | common


_WORD = re.compile(r"[A-Za-z]+")


def build_gazetteer() -> Gazetteer:
    """Derive the lists from Faker's providers (slow: imports every locale)."""
    first: set[str] = set()
    last: set[str] = set()
    for prov in _providers("faker.providers.person"):
        for attr, value in vars(prov).items():
            target = first if attr.startswith("first_names") else None
            target = last if attr.startswith("last_names") else target
            if target is None:
                continue
            for name in _strings(value):
                if _latin(name) and len(name) > 1:
                    target.update(part.lower() for part in name.split())
    streets: set[str] = {w.lower() for w in EXTRA_STREET_WORDS}
    places: set[str] = set()
    place_attrs = ("countries", "states", "provinces", "counties", "cities", "city_names")
    for prov in _providers("faker.providers.address"):
        for attr, value in vars(prov).items():
            if attr.startswith(("street_suffix", "street_prefix")):
                streets.update(s.lower().strip() for s in _strings(value) if _latin(s))
            elif attr in place_attrs:
                places.update(s.lower().strip() for s in _strings(value) if _latin(s))
    lorem = importlib.import_module("faker.providers.lorem.en_US").Provider
    common = {w.lower() for w in lorem.word_list} | set(EXTRA_COMMON)
    streets.discard("")
    places = {p for p in places if len(p) > 2 and p not in common}
    return Gazetteer(
        common_names=frozenset((first | last) & common),
        first_names=frozenset(first - common),
        last_names=frozenset(last - common),
        common_words=frozenset(common),
        english=frozenset(_english_words(common)),
        street_words=frozenset(streets),
        places=frozenset(places),
        place_first_words=frozenset(p.split()[0] for p in places if " " in p),
    )
