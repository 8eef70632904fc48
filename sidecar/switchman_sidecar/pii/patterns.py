"""Recognizers for structured entities: e-mail, phone, card, SSN, IBAN, IP.

Each is a regex for candidates plus a validator (checksum, issuing rules,
``ipaddress``, ``phonenumbers``) so that recall comes from loose shapes and
precision from the checks. Cheap pre-tests (is there an ``@``, a digit?) skip
whole recognizers on texts that cannot contain their entity.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers

from switchman_sidecar.pii.spans import Finding
from switchman_sidecar.pii.validators import iban_ok, ip_ok, isbn13_ok, luhn_ok, ssn_ok

__all__ = ["find_structured", "has_context"]

# Each pattern starts with a plain character class and checks what precedes
# it with a lookbehind placed *after* that class: the regex engine can then
# skip ahead to candidate characters instead of trying every position.
EMAIL_RE = re.compile(
    r"[A-Za-z0-9](?<![\w.+-][A-Za-z0-9])[A-Za-z0-9._%+-]{0,63}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)
# (the lookahead is implied by the rest: a cheap test of 12 characters in C
# before the per-digit repetition is tried at every number)
# (a "+" before the digits makes it an international phone number, not a card)
CARD_RE = re.compile(r"\d(?<![\w+-]\d)(?=[\d -]{11})(?:[ -]?\d){11,18}(?![\w-])")
SSN_RE = re.compile(r"\d(?<![\w-]\d)\d\d([- .]?)\d{2}\1\d{4}(?![\w-])")
# Found from its check digits ("GB82 WEST...": letters, then two digits).
IBAN_RE = re.compile(
    r"\d\d(?<=[A-Za-z]{2}\d\d)(?<!\w[A-Za-z]{2}\d\d)"
    r"(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,3})?(?!\w)"
)
IPV4_RE = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w]|\.\d)")
IPV6_RE = re.compile(
    r"[0-9A-Fa-f:](?<![\w:][0-9A-Fa-f:])[0-9A-Fa-f]{0,3}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"
)
IPV6_HINT_RE = re.compile(r":[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{0,4}:")
PHONE_RE = re.compile(
    r"[+(\d](?<![\w+@/.-][+(\d])"
    # at least 7 characters that can be part of a number: the engine drops
    # house numbers, years and counts here instead of handing them to Python
    r"(?=[\d+()./ \-xXeEtTnNsSiIoO]{6}[\d+()./ \-xXeEtTnNsSiIoO])"
    # a country code of up to three digits ("+358"), also in parentheses
    # ("(+30) 6955 116979"), an area code in parentheses, then digit groups
    # with a trunk prefix ("+44(0)20 …") or a slash ("030/1234567") between
    r"(?:(?<=\+)\d{0,3}[ .-]?)?"
    r"(?:(?<=\()\+?\d{1,5}\)[ .-]?)?"
    r"\d{0,12}(?:(?:[ ]?[.-]|[ ]|[ ]?\(\d{1,4}\)[ ]?|/)\d{1,12}){0,6}"
    r"(?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6})?"
    r"(?![\w@:]|[.-]\d)",
    re.IGNORECASE,
)
EXT_RE = re.compile(r"[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6}$", re.IGNORECASE)
DATE_SHAPE_RE = re.compile(
    r"^(?:\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4})(?:[ ]\d{1,2})?$"
)
DECIMAL_RE = re.compile(r"^\d+\.\d+$")
#: Shapes that are other numbers as often as phones: a postcode ("1200-195",
#: "01310-100"), a range of years or values ("1998-2002", "(1983-1987").
OTHER_SHAPE_RE = re.compile(r"\d{4,5}-\d{3}$|\(?\d{4}[ ]?-\d{4}$")
DIGIT_RE = re.compile(r"\d")

PHONE_CONTEXT = (
    "phone", "tel", "call", "mobile", "cell", "fax", "number", "contact", "reach",
    "text", "whatsapp", "sms", "dial", "ring", "landline", "answering",
)  # fmt: skip
NOT_PHONE_CONTEXT = (
    "licen", "account", "order", "passport", "invoice", "ticket", "policy", "member",
    "customer", "serial", "tracking", "reference", "id ", "id:", "id#", "zip", "postal",
)  # fmt: skip
#: Cues strong enough for a six-digit number ("call 33 93 31"): "number",
#: "text" or "contact" alone also introduce codes and references.
STRONG_PHONE_CONTEXT = (
    "phone", "tel", "call", "mobile", "cell", "fax", "whatsapp", "dial", "landline",
)  # fmt: skip
#: A number introduced as another kind of number ("licence number is …",
#: "zip code: …", "order #…") is not a phone, whatever its shape.
OTHER_NUMBER_LABEL_RE = re.compile(
    r"(?:licen[cs]e|account|acct|order|passport|invoice|ticket|policy|member(?:ship)?|"
    r"customer|serial|tracking|reference|ref|zip|postal|post|routing|case|claim|booking|"
    r"confirmation|verification|employee|student|badge|isbn|pin|otp)"
    r"\W{0,3}(?:(?:number|num|no|code|id|#)\W{0,3})?(?:(?:is|was|are)\W{0,3})?$",
    re.IGNORECASE,
)
#: The cues as word starts: "ring" is not in "During", "tel" not in "hotel",
#: "call" not in "recall", "text" not in "context" ("telephone", "called" and
#: "cellphone" still are); "answering" ("not answering at …") is a cue of
#: its own, as "answer" alone is not (math prompts).
PHONE_CUE_RE = re.compile(r"(?<![^\W\d_])(?:" + "|".join(PHONE_CONTEXT) + ")")
STRONG_PHONE_CUE_RE = re.compile(r"(?<![^\W\d_])(?:" + "|".join(STRONG_PHONE_CONTEXT) + ")")
SSN_CONTEXT = ("ssn", "social security", "social-security", "ss#", "ss #", "taxpayer")


def has_context(text: str, start: int, words: tuple[str, ...], window: int = 48) -> bool:
    """Whether one of ``words`` occurs in the ``window`` characters before ``start``."""
    before = text[max(0, start - window) : start].lower()
    return any(w in before for w in words)


def _cue_before(text: str, start: int, cue: re.Pattern[str], window: int = 48) -> bool:
    """Whether a cue word starts in the ``window`` characters before ``start``."""
    return cue.search(text[max(0, start - window) : start].lower()) is not None


def _emails(text: str) -> Iterator[Finding]:
    """``EMAIL_RE.finditer`` without trying the regex at every word: a local
    part has at most 64 characters and no "@", so a match that uses the next
    "@" starts at most 64 characters before it, and none starts earlier."""
    pos = 0
    while (at := text.find("@", pos)) >= 0:
        m = EMAIL_RE.search(text, max(pos, at - 64))
        if m is None:
            return
        yield Finding(m.start(), m.end(), "EMAIL_ADDRESS", 10)
        pos = m.end()


def _ibans(text: str, spans: list[tuple[int, int]]) -> Iterator[Finding]:
    for s, e in spans:
        start = s - 2
        value = text[start:e]
        # the regex also takes a short word after the number ("ES70 … 4980
        # for the rent"): drop space-separated groups from the end until the
        # checksum holds
        while not iban_ok(value):
            cut = value.rfind(" ")
            if cut < 15:  # no IBAN is shorter
                break
            value = value[:cut]
        else:
            yield Finding(start, start + len(value), "IBAN_CODE", 12)


def _cards(text: str, spans: list[tuple[int, int]]) -> Iterator[Finding]:
    for s, e in spans:
        value = text[s:e]
        # every card layout with separators starts with a group of four
        # ("4111 1111 …", "3782 822463 10005"): "001-395-459-2591" is a phone
        if not (value.isdigit() or value[:4].isdigit() > value[4].isdigit()):
            continue
        if luhn_ok(value):
            yield Finding(s, e, "CREDIT_CARD", 14)


def _ips(text: str, spans: list[tuple[int, int]]) -> Iterator[Finding]:
    for s, e in spans:
        if ip_ok(text[s:e]):
            yield Finding(s, e, "IP_ADDRESS", 16)
    yield from _ip6s(text)


def _ip6s(text: str) -> Iterator[Finding]:
    # the IPv6 regex starts on any hex letter, so run it only when a "::" or a
    # ":hex:" group (a literal-led search, fast) says there may be one
    if "::" in text or IPV6_HINT_RE.search(text):
        for m in IPV6_RE.finditer(text):
            value = m.group()
            # "12:30:45" is a time, not an address: demand hex letters, a "::" or 8 groups.
            if (
                ("::" in value or value.count(":") == 7 or any(c.isalpha() for c in value))
                and ip_ok(value)
                and value.strip(":")
            ):
                yield Finding(m.start(), m.end(), "IP_ADDRESS", 16)


def _ssns(text: str, spans: list[tuple[int, int]]) -> Iterator[Finding]:
    for s, e in spans:
        value = text[s:e]
        if not ssn_ok(value):
            continue
        # Dashed 3-2-4 is the SSN shape; bare or dotted needs a cue nearby.
        if value[3] == "-" or has_context(text, s, SSN_CONTEXT):
            yield Finding(s, e, "US_SSN", 18)


#: A label after the number: "555 0199 (office)", "0503204941 is my mobile".
PHONE_AFTER_RE = re.compile(
    r"[ \t\-]*(?:,?[ ](?:is|was)[ ](?:my|our|his|her|their|the)[ ])?"
    r"\(?(?:office|fax|mobile|home|work|cell|tel|phone)",
    re.I,
)
UNIT_BEFORE = ("apt", "apt.", "suite", "box", "unit", "ste", "flat", "room")


def _phone_ok(text: str, start: int, value: str) -> bool:
    if len(value) < 7 or value.count("/") > 1:
        return False  # a house number, a year, a count; a date ("3/23/1940")
    before = text[max(0, start - 8) : start].lower().split()
    if before and before[-1] in UNIT_BEFORE:
        return False
    core = EXT_RE.sub("", value)
    digits = sum(c.isdigit() for c in core)
    if not 6 <= digits <= 15:
        return False
    if DATE_SHAPE_RE.match(core) or DECIMAL_RE.match(core):
        return False
    if digits == 13 and isbn13_ok(core):
        return False  # a book number ("978-0-14-241050-9"): checksum-validated
    if "/" in core and not _slash_ok(core):
        return False
    if core.startswith(("+", "(+")):
        return _possible_number(core)
    groups = [g for g in re.split(r"[ ./()-]+", core) if g]
    if digits == 6:
        # six digits (numbering plans of small countries, "61 51 81"): only
        # in even groups (not "12 3456", a house number and a postcode), with
        # a strong cue before or a label after, and no cue for another number
        return (
            len(groups) >= 2
            and len({len(g) for g in groups}) == 1
            and bool(
                _cue_before(text, start, STRONG_PHONE_CUE_RE)
                or PHONE_AFTER_RE.match(text, start + len(value))
            )
            and not has_context(text, start, NOT_PHONE_CONTEXT)
        )
    if (
        len(groups) == 1
        or (len(groups) == 2 and " " in core and not any(c in core for c in "-.(/"))
        or OTHER_SHAPE_RE.match(core)
    ):
        # A bare digit run, two space-separated numbers ("638 2229", a house
        # number and a postcode), a postcode or a range ("1200-195",
        # "1998-2002") is an order, street or postal number or a span of years
        # as often as a phone: it needs a cue, and no cue for another number.
        cue = _cue_before(text, start, PHONE_CUE_RE) or PHONE_AFTER_RE.match(
            text, start + len(value)
        )
        return bool(cue) and not has_context(text, start, NOT_PHONE_CONTEXT)
    if not any(c in core for c in " -()") and min(len(g) for g in groups) < 2:
        return False  # "1.2.3.4000": a version, not a number to dial
    return max(len(g) for g in groups) <= 8


def _possible_number(core: str) -> bool:
    """An international number by Google's metadata (phonenumbers)."""
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(core, None))
    except phonenumbers.NumberParseException:
        return False


def _other_number(text: str, start: int) -> bool:
    """Whether the number is introduced as another kind ("licence number is");
    a substring screen in C first, the regex only when a label word is there."""
    lo = max(0, start - 40)
    before = text[lo:start].lower()
    return any(w in before for w in _OTHER_NUMBER_STEMS) and (
        OTHER_NUMBER_LABEL_RE.search(text, lo, start) is not None
    )


#: Every label of OTHER_NUMBER_LABEL_RE contains one of these.
_OTHER_NUMBER_STEMS = (
    "licen", "acc", "order", "passport", "invoice", "ticket", "policy", "member", "customer",
    "serial", "tracking", "ref", "zip", "post", "routing", "case", "claim", "booking",
    "confirmation", "verification", "employee", "student", "badge", "isbn", "pin", "otp",
)  # fmt: skip


def _slash_ok(core: str) -> bool:
    """A slash separates an area code from the subscriber number ("030/1234567",
    "06-43/189 8540"): one slash, a short part before it and six digits or more
    after it; "2019/2020" and "401/403/404" are not phone numbers."""
    head, _, tail = core.partition("/")
    return "/" not in tail and sum(map(str.isdigit, head)) <= 6 <= sum(map(str.isdigit, tail))


def _phones(text: str, spans: list[tuple[int, int]]) -> Iterator[Finding]:
    for start, end in spans:
        value = text[start:end]
        if (
            len(value) >= 7
            and _phone_ok(text, start, value)
            and (value[0] == "+" or value[:2] == "(+" or not _other_number(text, start))
        ):
            yield Finding(start, end, "PHONE_NUMBER", 20)


#: The number-led recognizers in one pass: at each digit run (and each "+"
#: or "(" before one) every pattern is tried in a lookahead of its own, so
#: the text is scanned once, not five times. Each pattern starts at the start
#: of a digit run (its lookbehind forbids a word character before it), so
#: consuming the run loses no start; overlapping candidates of different
#: patterns are all kept (``regs`` holds each one's span, (-1, -1) if none).
NUMBERS_RE = re.compile(
    r"(?=[+(\d])"
    + "".join(
        f"(?:(?=(?P<{name}>{pattern}))|)"
        for name, pattern in (
            ("iban", IBAN_RE.pattern),
            ("card", CARD_RE.pattern),
            ("ip4", IPV4_RE.pattern),
            (
                "ssn",
                SSN_RE.pattern.replace("([- .]?)", "(?P<ssn_sep>[- .]?)").replace(
                    "\\1", "(?P=ssn_sep)"
                ),
            ),
            ("phone", f"(?i:{PHONE_RE.pattern})"),
        )
    )
    + r"(?:\d++|[+(])"
)
_NUMBER_GROUPS = tuple(
    enumerate(NUMBERS_RE.groupindex[k] for k in ("iban", "card", "ip4", "ssn", "phone"))
)


def _number_spans(text: str) -> list[list[tuple[int, int]]]:
    """Per pattern (IBAN, card, IPv4, SSN, phone), the spans ``finditer`` of
    that pattern alone would give: a candidate that starts inside the
    previous match of the same pattern is dropped, as ``finditer`` would
    never try it."""
    out: list[list[tuple[int, int]]] = [[], [], [], [], []]
    ends = [0, 0, 0, 0, 0]
    for m in NUMBERS_RE.finditer(text):
        if m.lastindex is None:
            continue  # a number no pattern starts at (most of them): one C-level test
        regs = m.regs
        for k, g in _NUMBER_GROUPS:
            span = regs[g]
            if span[0] >= ends[k]:
                out[k].append(span)
                ends[k] = span[1]
    return out


def find_structured(text: str) -> list[Finding]:
    """All structured candidates in ``text`` (overlaps resolved by the caller)."""
    out: list[Finding] = []
    if "@" in text:
        out.extend(_emails(text))
    if DIGIT_RE.search(text) is None:
        return out
    ibans, cards, ip4s, ssns, phones = _number_spans(text)
    out.extend(_ibans(text, ibans))
    out.extend(_cards(text, cards))
    out.extend(_ips(text, ip4s))
    out.extend(_ssns(text, ssns))
    out.extend(_phones(text, phones))
    return out
