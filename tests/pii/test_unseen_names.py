"""PERSON and LOCATION evidence that does not depend on the word lists, and
the word-list cache file.

The detector here has empty name and place lists, so every hit comes from
cues, shape, e-mail addresses, lists or prepositions; the names are invented.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from switchman_sidecar.pii import gazetteer, native
from switchman_sidecar.pii.detector import Detector


@pytest.fixture(scope="module")
def blind() -> Detector:
    gaz = dataclasses.replace(
        gazetteer.load_gazetteer(),
        first_names=frozenset(),
        last_names=frozenset(),
        places=frozenset(),
        place_first_words=frozenset(),
    )
    return Detector(gazetteer=gaz)


def found(det: Detector, text: str, entity: str) -> list[str]:
    return [text[f.start : f.end] for f in det.scan(text) if f.entity == entity]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Please forward the invoice to Dr. Zorvan Keltrish by Friday.", ["Zorvan Keltrish"]),
        ("My name is Quillon Abernathy-Vosk and I need help.", ["Quillon Abernathy-Vosk"]),
        ("The report from Tavish Orrenbeck arrived late.", ["Tavish Orrenbeck"]),
        ("Thanks for your help.\nRegards,\nMarlowe Fenstad", ["Marlowe Fenstad"]),
        ("Write to Brannoc at brannoc.tilbury@corp.example today", ["Brannoc"]),
        # an enumeration (the last item after "and" needs one more cue, see docs/pii.md)
        ("Invited: Orlaith, Brannoc, Tesmer, and me.", ["Orlaith", "Brannoc", "Tesmer"]),
        ("I loved Tavish Orrenbeck's second album.", ["Tavish Orrenbeck"]),
        ("Quorrin is a very patient listener.", ["Quorrin"]),
        ("The user is Grace Hopper.", ["Grace Hopper"]),
        # CamelCase after a name prefix is still a name; short degrees stay
        ("Please ask Dr. Orla McTavish about it.", ["Orla McTavish"]),
        ("Signed,\nTavish Orrenbeck PhD", ["Tavish Orrenbeck PhD"]),
        # a title makes the next word a name even when it is a common word
        ("Mr. Young is a 50 year old man.", ["Young"]),
        # verbs that take a person: before, after (also past an adverb), pronouns
        ("A film directed by Ann Ekberg and starring Vorlik.", ["Ann Ekberg", "Vorlik"]),
        ("Yesterday Quorrin just had to leave early.", ["Quorrin"]),
        ("Tavish Orrenbeck listed his top songs.", ["Tavish Orrenbeck"]),
        ("Quorrin spent a year at the plant.", ["Quorrin"]),
        # a possessive with what a person has
        ("As promised, here's Hleb's address.", ["Hleb"]),
        # vocative, a speaker's label, "your name?"
        ("Don't go to town, Brannoc!", ["Brannoc"]),
        ('Orlaith: "Who are you?"', ["Orlaith"]),
        ("What's your name? Brannoc Tilvar", ["Brannoc Tilvar"]),
        # the last item of an enumeration, and a pair as a plural subject
        ("They had 3: Orlaith, Brannoc and Tesmer.", ["Orlaith", "Brannoc", "Tesmer"]),
        ("On this list? Lorvat and Quessen were precision engineers.", ["Lorvat", "Quessen"]),
        # a lower-case street word after a name is prose, not a street
        ("As regular commenter Audrey Ojima points out, it works.", ["Audrey Ojima"]),
    ],
)
def test_names_no_list_knows(blind: Detector, text: str, names: list[str]) -> None:
    assert found(blind, text, "PERSON") == names


@pytest.mark.parametrize(
    "text",
    [
        "Thank You For Your Order",
        "We shipped it to 12 Crown Street yesterday.",
        "Yesterday Acme Widgets Ltd announced results.",
        "Both IBM and NASA signed the deal.",
        "The Quick Brown Fox jumps.",
        "Unfortunately, the Quellbrook Street office is closed.",
        "Acme's new product ships today.",
        "Thanks, the Zorvex release was fine!",
        "That was expected, given Zorvex's popularity.",
        # identifiers in CamelCase are code, not names
        "Apply the RoutingPolicy and check TeamBudget status.",
        "Each ModelPool lists its models.",
    ],
)
def test_capitalised_words_that_are_not_names(blind: Detector, text: str) -> None:
    assert found(blind, text, "PERSON") == []


def test_uncased_text_needs_a_cue(blind: Detector) -> None:
    text = "hello, my name is quillon vosk and my card is blocked"
    assert found(blind, text, "PERSON") == ["quillon vosk"]
    assert found(blind, "mr. orrenbeck is a 50 year old man", "PERSON") == ["orrenbeck"]
    assert found(blind, "please call the office about my card", "PERSON") == []


def test_unlisted_place_after_a_preposition(blind: Detector) -> None:
    assert found(blind, "She grew up in Kalatsova and moved on.", "LOCATION") == ["Kalatsova"]
    assert found(blind, "She grew up in poverty.", "LOCATION") == []


def test_word_lists_cached_per_faker_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(gazetteer, "_LOADED", None)
    path = gazetteer.cache_path()
    assert path.is_relative_to(tmp_path) and "faker" in path.name
    assert gazetteer._from_cache() is None  # nothing cached yet
    stale = path.with_name("pii-words-faker0.0.1-v3.json")
    stale.parent.mkdir(parents=True)
    stale.write_text("{}", encoding="utf-8")
    built = gazetteer.load_gazetteer()
    assert path.exists()
    assert not stale.exists()  # an older version's file is removed
    assert gazetteer._from_cache() == built  # the file holds the same lists
    text = path.read_bytes()
    assert gazetteer.decode(text) == built and gazetteer.encode(built) == text
    # a damaged cache is ignored and rebuilt, never trusted: by Python and by the
    # compiled scanner, which parses the file itself
    for damaged in (text[: len(text) // 2], b"\tfirst_names\nx\n\tend\n", b"\xff\n\tend"):
        path.write_bytes(damaged)
        assert gazetteer._from_cache() is None
        monkeypatch.setattr(gazetteer, "_LOADED", None)
        monkeypatch.setattr(native, "_PROCESS", None)
        thread = gazetteer.preload_gazetteer()
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert gazetteer._from_cache() == built  # rewritten
        scanner = native.process_scanner()
        assert scanner is not None
        assert scanner.list_sizes() == {f: len(getattr(built, f)) for f in gazetteer._FIELDS}
    assert gazetteer.load_gazetteer() == built


def test_speed_caches_keep_no_request_data() -> None:
    """The per-word caches behind the scan hold list vocabulary only: nothing
    of a request (names, street names, numbers, places) outlives it."""
    from switchman_sidecar.pii import address, names

    det = Detector()
    text = (
        "Dear Zorvan Keltrish, Davis and Kowalski moved to 42 Quellbornstrasse, "
        "Apt. 7, Kalatsova. The Street is quiet. Call 555-0142."
    )
    det.scan(text)
    gaz = gazetteer.load_gazetteer()
    cached = set(names._single_cache(gaz)) | set(address._kind_cache(gaz, True))
    for value in ("Zorvan", "Keltrish", "Davis", "Kowalski", "42", "Quellbornstrasse", "7"):
        assert value not in cached
    assert "Kalatsova" not in cached and "Kalatsova," not in cached
    assert {"is", "Apt."} <= cached  # vocabulary is what the cache is for


@pytest.mark.parametrize("text", ["a@b c d.e@f@g  h@ @x y@", "", "no at", "@@@", "x\ty@z\u2003W@q"])
def test_email_local_parts_found_from_each_at(text: str) -> None:
    from switchman_sidecar.pii.names import _local_parts

    expected = " ".join(w.split("@", 1)[0].lower() for w in text.split() if "@" in w)
    assert _local_parts(text) == expected
