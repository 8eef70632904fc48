"""Phone numbers in the formats of many countries (Faker's per-locale
``phone_number()``), in sentences with a cue, and other numbers of the same
locales (postcodes, dates, ISBNs) that must not be taken for phones. The
numbers are generated, not chosen: this checks the shapes in general, not
the examples the rules were written from."""

from __future__ import annotations

import random
import warnings

import pytest
from faker import Faker

from switchman_sidecar.pii.detector import Detector

LOCALES = (
    "en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "pl_PL", "pt_BR", "pt_PT",
    "sv_SE", "da_DK", "fi_FI", "no_NO", "cs_CZ", "hu_HU", "ro_RO", "ru_RU", "uk_UA", "tr_TR",
    "ja_JP", "ko_KR", "en_IN", "en_AU", "en_CA", "fr_CH", "de_AT", "el_GR", "hr_HR", "sk_SK",
    "lv_LV", "lt_LT", "et_EE", "bg_BG", "en_NZ", "es_MX", "id_ID", "vi_VN", "en_IE",
)  # fmt: skip
CUED = (
    "Call me at {} tomorrow.",
    "Phone: {}",
    "You can reach the office on {} after 5pm.",
    "Fax {}, or write to us.",
    "My mobile is {}.",
    "{} (office)",
)
NOT_PHONES = (
    "The parcel goes to postcode {postcode}.",
    "It was signed on {date}.",
    "The book {isbn} is out of print.",
    "Meeting moved to {date} at {time}.",
)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


def _fakers() -> list[tuple[str, Faker]]:
    out = []
    for i, loc in enumerate(LOCALES):
        fake = Faker(loc)
        fake.seed_instance(1000 + i)
        out.append((loc, fake))
    return out


def test_cued_phone_numbers_of_many_countries(detector: Detector) -> None:
    rng = random.Random(11)
    caught = total = 0
    missed = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Faker: "numbers are purely hypothetical"
        for loc, fake in _fakers():
            for _ in range(12):
                number = fake.phone_number()
                text = rng.choice(CUED).format(number)
                start = text.index(number)
                end = start + len(number)
                found = any(
                    f.entity == "PHONE_NUMBER" and f.start <= start and f.end >= end
                    for f in detector.scan(text)
                )
                caught += found
                total += 1
                if not found:
                    missed.append((loc, number))
    assert caught / total >= 0.95, missed


def test_other_numbers_of_many_countries_are_not_phones(detector: Detector) -> None:
    rng = random.Random(12)
    flagged = []
    for loc, fake in _fakers():
        for _ in range(8):
            text = rng.choice(NOT_PHONES).format(
                postcode=fake.postcode(), date=fake.date(), time=fake.time(), isbn=fake.isbn13()
            )
            phones = [
                text[f.start : f.end] for f in detector.scan(text) if f.entity == "PHONE_NUMBER"
            ]
            if phones:
                flagged.append((loc, text, phones))
    assert len(flagged) <= 3, flagged
