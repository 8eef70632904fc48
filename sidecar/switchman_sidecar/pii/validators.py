"""Checksums and plausibility rules that turn a regex hit into a finding.

Regexes alone flag every long digit run; the checksum (Luhn for cards,
ISO 7064 mod-97 for IBANs) and the issuing rules (SSA for SSNs) are what keep
precision high without a model. Each validator takes the matched text and
returns whether it is a real instance.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

__all__ = ["VALIDATORS", "iban_ok", "ip_ok", "isbn13_ok", "luhn_ok", "mod11_ok", "ssn_ok"]

#: IBAN length per country (ISO 13616 registry); unknown countries fall back
#: to the generic 15..34 bound.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def digits_of(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def luhn_ok(text: str) -> bool:
    """Luhn (mod 10) over the digits; separators are ignored."""
    digits = digits_of(text)
    if not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """ISO 7064 mod-97 = 1, with the country's registered length when known."""
    s = "".join(c for c in text if c.isalnum()).upper()
    if len(s) < 15 or len(s) > 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    expected = IBAN_LENGTHS.get(s[:2])
    if expected is not None and len(s) != expected:
        return False
    rearranged = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def ssn_ok(text: str) -> bool:
    """SSA rules: area not 000/666/9xx, group not 00, serial not 0000, and not
    one of the numbers famous for appearing in advertisements."""
    digits = digits_of(text)
    if len(digits) != 9 or len(set(digits)) == 1:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in ("078051120", "219099999", "123456789")


def isbn13_ok(text: str) -> bool:
    """An ISBN-13: 978/979, then digits whose 1-3-1-3 weighted sum ends in 0."""
    digits = digits_of(text)
    if len(digits) != 13 or not digits.startswith(("978", "979")):
        return False
    return sum((ord(c) - 48) * (3 if i % 2 else 1) for i, c in enumerate(digits)) % 10 == 0


def mod11_ok(text: str) -> bool:
    """Weighted mod-11 check digit, as in ISBN-10 and NHS numbers: with weights 1, 2,
    3, ... from the rightmost character (the check digit; ``X`` stands for 10), the
    weighted sum is a multiple of 11. Separators are ignored; needs 2+ digits."""
    chars = [c for c in text.upper() if c.isdigit() or c == "X"]
    if len(chars) < 2 or "X" in chars[:-1]:
        return False
    total = sum(
        (10 if c == "X" else ord(c) - 48) * weight for weight, c in enumerate(reversed(chars), 1)
    )
    return total % 11 == 0


def ip_ok(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


#: Validators a policy's CustomEntity may name.
VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn_ok,
    "iban": iban_ok,
    "ssn": ssn_ok,
    "ip": ip_ok,
    "mod11": mod11_ok,
}
