"""Validators and recognizers on hand-written texts (not the evaluation data)."""

from __future__ import annotations

import pytest

from switchman_sidecar.pii.detector import CustomRecognizer, Detector
from switchman_sidecar.pii.validators import iban_ok, luhn_ok, ssn_ok


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


def found(detector: Detector, text: str) -> list[tuple[str, str]]:
    return [(text[f.start : f.end], f.entity) for f in detector.scan(text)]


def test_checksums() -> None:
    assert luhn_ok("4111 1111 1111 1111") and not luhn_ok("4111 1111 1111 1112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89 3704 0044 0532 0130 01")
    assert not iban_ok("DE89 3704 0044 0532 0130")  # wrong length for DE
    assert ssn_ok("536-22-1234")
    for bad in ("000-12-3456", "666-12-3456", "912-12-3456", "536-00-1234", "536-22-0000"):
        assert not ssn_ok(bad), bad


@pytest.mark.parametrize(
    ("text", "value", "entity"),
    [
        (
            "write to jane.roe+news@mail.example.org today",
            "jane.roe+news@mail.example.org",
            "EMAIL_ADDRESS",
        ),
        ("card: 4111-1111-1111-1111, exp 09/29", "4111-1111-1111-1111", "CREDIT_CARD"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
        ("my ssn is 536-22-1234.", "536-22-1234", "US_SSN"),
        ("server at 192.168.10.254 is down", "192.168.10.254", "IP_ADDRESS"),
        ("v6 2001:db8::8a2e:370:7334 here", "2001:db8::8a2e:370:7334", "IP_ADDRESS"),
        ("Call +44 20 7946 0958 tomorrow", "+44 20 7946 0958", "PHONE_NUMBER"),
        ("office (415) 555-2671 ext. 12", "(415) 555-2671 ext. 12", "PHONE_NUMBER"),
    ],
)
def test_structured_entities(detector: Detector, text: str, value: str, entity: str) -> None:
    assert (value, entity) in found(detector, text)


@pytest.mark.parametrize(
    "text",
    [
        "The meeting is on 2024-03-15 at 10:30:00.",
        "Order 4111111111111112 shipped",  # fails Luhn
        "Pi is 3.14159265 roughly",
        "version 1.2.3.4000 released",
        "It costs 1,299.00 dollars and weighs 12 kg",
        "Set the timeout to 15000 ms and retry 3 times",
    ],
)
def test_no_false_alarms_on_numbers(detector: Detector, text: str) -> None:
    assert [e for _, e in found(detector, text) if e not in ("PERSON", "LOCATION")] == []


def test_person_address_location_on_unseen_text(detector: Detector) -> None:
    text = (
        "Hi, my name is Margarethe Oyelaran-Quist and I moved last week. "
        "Please send the contract to 4417 Birchwood Avenue, Apt. 12, Springfield, IL 62704. "
        "My colleague Mr. Zbigniew Wrzesniewski lives in Portugal."
    )
    result = found(detector, text)
    kinds = {e for _, e in result}
    assert {"PERSON", "STREET_ADDRESS", "LOCATION"} <= kinds
    persons = [v for v, e in result if e == "PERSON"]
    assert any("Oyelaran-Quist" in p for p in persons)
    assert any("Wrzesniewski" in p for p in persons)
    address = next(v for v, e in result if e == "STREET_ADDRESS")
    assert address.startswith("4417 Birchwood Avenue") and "62704" in address


def test_ordinary_prose_is_left_alone(detector: Detector) -> None:
    text = (
        "Will the new release support streaming? May we also get a summary of the long "
        "document in three bullet points, with the best examples first?"
    )
    assert found(detector, text) == []


def test_custom_entity_with_validator_and_context() -> None:
    rec = CustomRecognizer.build("EMPLOYEE_ID", r"\bE-\d{6}\b", "", ["employee"])
    det = Detector([rec], names=False, addresses=False)
    assert found(det, "employee number E-123456") == [("E-123456", "EMPLOYEE_ID")]
    assert found(det, "part E-123456 is in stock") == []
    luhn = CustomRecognizer.build("LOYALTY", r"\b\d{12}\b", "luhn", [])
    det = Detector([luhn], names=False, addresses=False)
    assert [e for _, e in found(det, "loyalty 123456789015")] == ["LOYALTY"]


@pytest.mark.parametrize(
    ("regex", "validator", "message"),
    [("(", "", "bad regex"), ("a*", "", "empty string"), ("x", "crc", "unknown validator")],
)
def test_custom_entity_errors(regex: str, validator: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CustomRecognizer.build("X", regex, validator, [])


@pytest.mark.parametrize(
    "text",
    [
        "mail a@b.co and x.y+z@mail.example.org, not @handle or a@b",
        "@" * 5 + " q@r.io " + "w" * 80 + "@long.example.com v@w.net",
        "na%me@ex.com and jos\u00e9.x@ex.com, bad@-x.com then ok@ok.com",
        "a@b.c@d.com e@f.gh@",
    ],
)
def test_email_search_from_each_at_matches_the_plain_regex(text: str) -> None:
    """The '@'-anchored search finds exactly what the regex finds over the text."""
    from switchman_sidecar.pii.patterns import EMAIL_RE, _emails

    assert [(f.start, f.end) for f in _emails(text)] == [m.span() for m in EMAIL_RE.finditer(text)]


def test_numbers_inside_structured_findings_anchor_no_address(detector: Detector) -> None:
    text = "Call 555-201-3344 today. Card 4111 1111 1111 1111 expires soon."
    assert [f.entity for f in detector.scan(text)] == ["PHONE_NUMBER", "CREDIT_CARD"]
    text = "Ship it to 42 Crown Street, Apt. 7 and call 555-201-3344."
    assert [(text[f.start : f.end], f.entity) for f in detector.scan(text)] == [
        ("42 Crown Street, Apt. 7", "STREET_ADDRESS"),
        ("555-201-3344", "PHONE_NUMBER"),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Reach the front desk: call 47 21 90 after nine.", "47 21 90"),
        ("Hotel Lindholm\n88 14 52 office\nreception@example.org", "88 14 52"),
        ("Kathmandu office +977 9841234567 works", "+977 9841234567"),
        ("Ring me on (+30) 6944 571 302 tonight", "(+30) 6944 571 302"),
        ("London desk +44(0)2079460321", "+44(0)2079460321"),
        ("Praxis Dr. Roth, Tel. 030/8847261", "030/8847261"),
        ("from abroad dial 001-415-555-0172", "001-415-555-0172"),
        ("0412883105 is my mobile, text first", "0412883105"),
        ("Phone: (412) 396 -6754  Fax: (412) 396 -6752", "(412) 396 -6754"),
        ("They're not answering at 785 8949", "785 8949"),
    ],
)
def test_phone_formats(detector: Detector, text: str, value: str) -> None:
    assert (value, "PHONE_NUMBER") in found(detector, text)


@pytest.mark.parametrize(
    "text",
    [
        "Her driver's licence number is 4417-23-9081.",
        "Zip code is 01310-100, Sao Paulo.",
        "Largo do Carmo 12\n1200-195 Lisboa",
        "the 2019/2020 season ended; codes 401/403/404 are errors",
        "Your verification code: 48 21 97",
        "I'd call a cab to 14 3684 Court Street",
        "call the hotel about the 2 bed 3 bath",
        "He spent 1898-1901 in Syracuse and 1903-1908 in Buffalo.",
        "an IR absorption peak between 1680-1700 cm-1",
        "During the 2000-2001 seasons he scored 27.1 points a game",
        "Recall that the hotel had 4821 7730 visitors",
    ],
)
def test_numbers_that_are_not_phones(detector: Detector, text: str) -> None:
    assert [v for v, e in found(detector, text) if e == "PHONE_NUMBER"] == []


def test_international_prefix_is_not_a_card(detector: Detector) -> None:
    # 12 digits that pass Luhn: with "+", or led by 0 in groups, it is a phone
    for text in ("mobile +447700677662", "dial 001-395-459-2591"):
        assert [e for _, e in found(detector, text)] == ["PHONE_NUMBER"], text


@pytest.mark.parametrize(
    ("text", "value", "entity"),
    [
        # a short word after an IBAN whose length is a multiple of four
        (
            "Pay ES70 7907 3344 1302 5518 4980 for the rent",
            "ES70 7907 3344 1302 5518 4980",
            "IBAN_CODE",
        ),
        (
            "Konto PL81698655137579782841186971 and the rest",
            "PL81698655137579782841186971",
            "IBAN_CODE",
        ),
        # Maestro numbers may start with 0 (IIN 0604)
        ("Maestro 060474295023 expires soon", "060474295023", "CREDIT_CARD"),
    ],
)
def test_iban_before_a_word_and_cards_led_by_zero(
    detector: Detector, text: str, value: str, entity: str
) -> None:
    assert (value, entity) in found(detector, text)


def test_mod11_check_digit_isbn10_and_nhs_style() -> None:
    from switchman_sidecar.pii.validators import mod11_ok

    assert mod11_ok("0-306-40615-2") and mod11_ok("0-8044-2957-X")  # ISBN-10
    assert mod11_ok("943 476 5919")  # NHS number (check digit 9)
    assert not mod11_ok("0-306-40615-3") and not mod11_ok("943 476 5918")
    assert not mod11_ok("X123") and not mod11_ok("7")


def test_every_validator_the_crd_offers_exists_in_the_sidecar() -> None:
    """A RoutingPolicy the API server accepts must not name a validator the sidecar
    refuses (it used to offer 'mod11', which the sidecar did not have)."""
    import typing

    from switchman_operator.api.routingpolicy import CustomEntity
    from switchman_sidecar.pii.validators import VALIDATORS

    offered = set(typing.get_args(CustomEntity.model_fields["validator"].annotation))
    assert offered - {"none"} == set(VALIDATORS)
