"""Reversible placeholders, and the irreversible mask and hash actions.

A placeholder is ``[TYPE_xxxxxx]``: the entity type (so the model still knows
it is talking about a person or an e-mail address) and six hex digits of a
keyed HMAC of the value. Keyed by a per-process secret, the same value gets the
same placeholder in every message of a conversation and in every request,
without any state shared between requests, and nobody without the secret can
test a guess against a placeholder. Square brackets, upper-case letters, an
underscore and lower-case hex are copied verbatim by models and survive JSON
without escaping; ordinary prose never produces that exact shape, and only
placeholders issued for this request are ever restored.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

__all__ = [
    "MAX_PLACEHOLDER",
    "PLACEHOLDER_RE",
    "Vault",
    "hash_value",
    "mask_value",
    "placeholder_type",
]

DIGEST_CHARS = 6
"""24 bits: a collision inside one request is handled (longer digest), and
six characters are short enough for models to copy faithfully."""
LONG_DIGEST_CHARS = 12
MAX_TYPE = 40
MAX_PLACEHOLDER = 1 + MAX_TYPE + 1 + LONG_DIGEST_CHARS + 1
PLACEHOLDER_RE = re.compile(
    rf"\[[A-Z][A-Z0-9_]{{0,{MAX_TYPE}}}_[0-9a-f]{{{DIGEST_CHARS},{LONG_DIGEST_CHARS}}}\]"
)
_NOT_TYPE = re.compile(r"[^A-Z0-9_]+")
_KEEP_LAST_FOUR = frozenset({"CREDIT_CARD", "IBAN_CODE", "PHONE_NUMBER", "US_SSN"})


@functools.lru_cache(maxsize=256)
def placeholder_type(entity: str) -> str:
    """The entity type as it may appear inside a placeholder."""
    name = _NOT_TYPE.sub("_", entity.upper()).strip("_") or "PII"
    if not name[0].isalpha():
        name = "PII_" + name
    return name[:MAX_TYPE]


class Vault:
    """The placeholders issued for one request and the values behind them."""

    __slots__ = ("_by_value", "_secret", "values")

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self.values: dict[str, str] = {}
        """placeholder → original value (what the restorer puts back)."""
        self._by_value: dict[tuple[str, str], str] = {}

    def placeholder(self, entity: str, value: str) -> str:
        key = (entity, value)
        known = self._by_value.get(key)
        if known is not None:
            return known
        kind = placeholder_type(entity)
        digest = hmac.digest(self._secret, f"{kind}\0{value}".encode(), "sha256").hex()
        token = f"[{kind}_{digest[:DIGEST_CHARS]}]"
        if self.values.get(token, value) != value:
            token = f"[{kind}_{digest[:LONG_DIGEST_CHARS]}]"
        self.values[token] = value
        self._by_value[key] = token
        return token


def mask_value(entity: str, value: str) -> str:
    """Letters and digits become ``*``; numbers keep their last four, e-mail
    addresses their first character and domain (enough to recognise, not to use)."""
    if entity == "EMAIL_ADDRESS" and "@" in value:
        local, _, domain = value.partition("@")
        return local[:1] + "*" * (len(local) - 1) + "@" + domain
    keep = 4 if entity in _KEEP_LAST_FOUR else 0
    alnum = sum(c.isalnum() for c in value)
    out = []
    for c in value:
        if c.isalnum():
            out.append(c if alnum <= keep else "*")
            alnum -= 1
        else:
            out.append(c)
    return "".join(out)


def hash_value(secret: bytes, entity: str, value: str) -> str:
    """A stable, irreversible stand-in: equal values compare equal downstream."""
    digest = hmac.new(secret, f"hash\0{entity}\0{value}".encode(), hashlib.sha256).hexdigest()
    return f"<{placeholder_type(entity)}#{digest[:16]}>"
