"""One scan of a text: every recognizer, then overlaps resolved.

Order matters for precision: validated structured entities (checksums) win
over shapes, addresses over the names inside them ("12 Wallis Street"), and
names over places. Addresses stop at structured findings, and places are only
looked for outside addresses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from switchman_sidecar.pii.address import find_addresses, find_locations
from switchman_sidecar.pii.gazetteer import Gazetteer, load_gazetteer
from switchman_sidecar.pii.names import find_persons
from switchman_sidecar.pii.native import NativeScanner, native_scanner, process_scanner
from switchman_sidecar.pii.patterns import find_structured, has_context
from switchman_sidecar.pii.spans import Finding, resolve_overlaps
from switchman_sidecar.pii.validators import VALIDATORS

__all__ = ["BUILTIN_ENTITIES", "CustomRecognizer", "Detector"]

BUILTIN_ENTITIES = (
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS",
    "PERSON", "STREET_ADDRESS", "LOCATION",
)  # fmt: skip
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True, slots=True)
class CustomRecognizer:
    """A policy-defined entity: a regex, an optional validator, optional context
    words (when given, one must appear shortly before the match)."""

    name: str
    regex: re.Pattern[str]
    validator: Callable[[str], bool] | None = None
    context: tuple[str, ...] = ()

    @classmethod
    def build(
        cls, name: str, regex: str, validator: str, context: Sequence[str]
    ) -> CustomRecognizer:
        if not name:
            raise ValueError("a custom PII entity needs a name")
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise ValueError(f"custom PII entity {name!r}: bad regex: {exc}") from exc
        if pattern.match(""):
            raise ValueError(f"custom PII entity {name!r}: the regex matches the empty string")
        check = None
        if validator:
            check = VALIDATORS.get(validator)
            if check is None:
                raise ValueError(
                    f"custom PII entity {name!r}: unknown validator {validator!r} "
                    f"(known: {', '.join(sorted(VALIDATORS))})"
                )
        return cls(name, pattern, check, tuple(w.lower() for w in context if w))

    def find(self, text: str) -> list[Finding]:
        out = []
        for m in self.regex.finditer(text):
            if m.end() == m.start():
                continue
            if self.validator is not None and not self.validator(m.group()):
                continue
            if self.context and not has_context(text, m.start(), self.context, window=64):
                continue
            out.append(Finding(m.start(), m.end(), self.name, 5))
        return out


class Detector:
    """Finds entities in one text; safe to share (no per-scan state)."""

    def __init__(
        self,
        custom: Sequence[CustomRecognizer] = (),
        gazetteer: Gazetteer | None = None,
        *,
        names: bool = True,
        addresses: bool = True,
        native: bool = True,
    ) -> None:
        """``native``: use the compiled scanner when ``switchman_native`` is
        installed (same findings, faster; False: the Python reference)."""
        self.custom = tuple(custom)
        self.names = names
        self.addresses = addresses
        #: Whether the word-list recognizers run (given lists, or names/addresses on).
        self.uses_lists = gazetteer is not None or names or addresses
        # Given lists, or None for the process-wide ones: loaded in Python only when
        # the Python path needs them (always without the compiled scanner; with it,
        # for the few texts it hands back), so a sidecar keeps one copy, the compiled one.
        self._gaz = gazetteer
        self.native = native
        self._scanner: NativeScanner | None = None

    @property
    def gaz(self) -> Gazetteer | None:
        """The word lists in Python (loaded on first use), None without recognizers."""
        if self._gaz is None and self.uses_lists:
            self._gaz = load_gazetteer()
        return self._gaz

    def _compiled(self) -> NativeScanner | None:
        if not self.native:
            return None
        if self._scanner is None:
            self._scanner = (
                native_scanner(self._gaz) if self._gaz is not None else process_scanner()
            )
        return self._scanner

    def scan(self, text: str) -> list[Finding]:
        if len(text) < 2:
            return []
        found: list[Finding] = []
        for rec in self.custom:
            found.extend(rec.find(text))
        compiled = self._compiled() if self.uses_lists else None
        structured = compiled.structured(text) if compiled is not None else None
        found.extend(structured if structured is not None else find_structured(text))
        if self.uses_lists and _LETTER.search(text):
            if compiled is not None:
                # the same steps as below, compiled (switchman_native)
                kept = compiled.scan(text, found, names=self.names, addresses=self.addresses)
                if kept is not None:
                    return kept
            gaz = self.gaz
            assert gaz is not None
            hard = [(f.start, f.end) for f in found]
            if self.addresses:
                found.extend(find_addresses(text, gaz, hard))
            if self.names:
                # what outranks a name: runs of capitals inside it are skipped
                chosen = [(f.start, f.end) for f in resolve_overlaps(found)]
                found.extend(find_persons(text, gaz, chosen))
            if self.addresses:
                taken = [(f.start, f.end) for f in found]
                found.extend(find_locations(text, gaz, taken))
        return resolve_overlaps(found)
