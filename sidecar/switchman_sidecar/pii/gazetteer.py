"""Word lists for names and places, read from Faker's locale providers.

Without an NER model, PERSON and STREET_ADDRESS need lists: Faker (maintained,
pure Python, MIT) carries first and last names for ~80 locales, street
prefixes and suffixes in many languages, countries, states and real city
lists, plus a list of common English words that we use to veto names which
are also ordinary words ("will", "may", "long"). Loading takes about half a
second, so it happens once per process (``load_gazetteer`` is cached) and
only when a policy enables PII.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Gazetteer", "load_gazetteer"]

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
    street_words: frozenset[str]
    """Lower-case street prefixes/suffixes ("street", "rue", "ul.", "katu")."""
    places: frozenset[str]
    """Lower-case countries, states, provinces and cities (single or multi-word)."""
    place_first_words: frozenset[str]
    """First words of multi-word places, to know when to look further."""

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


@functools.cache
def load_gazetteer() -> Gazetteer:
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
        first_names=frozenset(first - common),
        last_names=frozenset(last - common),
        common_words=frozenset(common),
        street_words=frozenset(streets),
        places=frozenset(places),
        place_first_words=frozenset(p.split()[0] for p in places if " " in p),
    )
