"""The policy applied to one request: detect, act per entity type, remember
what to restore.

Actions (``PiiPolicy.actions`` per type, else ``default_action``, else
redact): ``REDACT`` swaps in a reversible placeholder, ``MASK`` and ``HASH``
are irreversible, ``BLOCK`` refuses the request (nothing is sent),
``ROUTE_COMPLIANT`` leaves the value in place and restricts the request to
models tagged with one of ``compliant_tags``, ``ALLOW`` leaves it. Every
finding is counted whatever its action; counts are all that leaves this
module (no values in logs, metrics or usage records).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.pii.detector import CustomRecognizer, Detector
from switchman_sidecar.pii.restorer import Restorer, VaultRestorer
from switchman_sidecar.pii.spans import Finding
from switchman_sidecar.pii.vault import Vault, hash_value, mask_value
from switchman_sidecar.pii.walker import walk_request

__all__ = ["PiiEngine", "Redaction"]

A = routes_pb2.PiiAction
# Plain ints for the per-finding loop (attribute reads on the protobuf enum
# wrapper go through a Python __getattr__).
_REDACT = int(A.PII_ACTION_REDACT)
_MASK = int(A.PII_ACTION_MASK)
_HASH = int(A.PII_ACTION_HASH)
_BLOCK = int(A.PII_ACTION_BLOCK)
_ROUTE_COMPLIANT = int(A.PII_ACTION_ROUTE_COMPLIANT)
#: Values shorter than this are not searched for again in the rest of the
#: request (a two-letter name would match too much).
_MIN_KNOWN = 3
#: Types whose detection depends on the words around them (a cue, a label, a
#: capitalised run): the ones an occurrence elsewhere can be missed for. Custom
#: entities with context words are added per policy. Validated patterns (e-mail,
#: card, IBAN, SSN, IP) are found wherever they occur.
CONTEXTUAL = frozenset(("PERSON", "LOCATION", "STREET_ADDRESS", "PHONE_NUMBER"))
_WORD = re.compile(r"\w+")
#: Texts at least this long have their findings remembered (shorter ones scan
#: in microseconds).
CACHE_MIN_CHARS = 256


@dataclass(slots=True)
class Redaction:
    body: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    blocked: str | None = None
    """Entity type that blocks the request, if any."""
    compliant_only: bool = False
    """Only models whose compliance tags intersect the policy's may answer."""
    restorer: Restorer = field(default_factory=Restorer)


class PiiEngine:
    """Built once per route table (``ValueError`` → the table is NACKed)."""

    def __init__(
        self,
        policy: routes_pb2.PiiPolicy,
        *,
        secret: bytes | None = None,
        detector: Detector | None = None,
        scan_cache: int = 4096,
    ) -> None:
        """``scan_cache``: how many texts' findings to remember (0: none). A chat
        re-sends its whole history every turn; with the cache each turn scans
        only what is new. Entries are a keyed digest of the text and the
        findings' offsets and types: no text, no values."""
        self.policy = policy
        self._cache: OrderedDict[bytes, list[Finding]] = OrderedDict()
        self._resolved: dict[str, int] = {}  # entity type → action, memoised
        self._cache_size = scan_cache
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._actions: dict[str, int] = {}
        for entity, action in policy.actions.items():
            if action not in A.values():
                raise ValueError(f"PII policy: unknown action {action} for {entity}")
            self._actions[entity] = action
        default = policy.default_action
        self._default = default if default != A.PII_ACTION_UNSPECIFIED else A.PII_ACTION_REDACT
        custom = []
        seen: set[str] = set()
        self.contextual = set(CONTEXTUAL)
        """Entity types the second pass looks for again (see ``CONTEXTUAL``)."""
        for c in policy.custom:
            if c.context:
                self.contextual.add(c.name)
            if c.name in seen:
                raise ValueError(f"PII policy: custom entity {c.name!r} is defined twice")
            seen.add(c.name)
            custom.append(CustomRecognizer.build(c.name, c.regex, c.validator, list(c.context)))
        routes = [a for a in self._actions.values() if a == A.PII_ACTION_ROUTE_COMPLIANT]
        if (routes or self._default == A.PII_ACTION_ROUTE_COMPLIANT) and not policy.compliant_tags:
            raise ValueError("PII policy: route-to-compliant needs compliant_tags")
        self.detector = detector
        if detector is None and policy.enabled:
            self.detector = Detector(custom)

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    def action_for(self, entity: str) -> int:
        action = self._resolved.get(entity)
        if action is None:
            action = self._resolved[entity] = self._action_for(entity)
        return action

    def _action_for(self, entity: str) -> int:
        action = self._actions.get(entity, A.PII_ACTION_UNSPECIFIED)
        if action == A.PII_ACTION_UNSPECIFIED and entity == "LOCATION":
            # A bare city or country is rarely personal on its own; follow the
            # street-address setting unless LOCATION has its own.
            action = self._actions.get("STREET_ADDRESS", A.PII_ACTION_UNSPECIFIED)
        return action if action != A.PII_ACTION_UNSPECIFIED else self._default

    def scan(self, text: str) -> list[Finding]:
        """The detector's findings for ``text``, remembered for long texts."""
        detector = self.detector
        assert detector is not None
        if self._cache_size <= 0 or len(text) < CACHE_MIN_CHARS:
            return detector.scan(text)
        key = hashlib.blake2b(
            text.encode("utf-8", "surrogatepass"), digest_size=16, key=self._secret[:64]
        ).digest()
        cache = self._cache
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
            return found
        found = detector.scan(text)
        cache[key] = found
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return found

    def redact(self, body: dict[str, Any], api: str) -> Redaction:
        if not self.policy.enabled or self.detector is None:
            return Redaction(body=body)
        run = _Run(self, Vault(self._secret))
        new_body = walk_request(body, api, run.rewrite)
        if run.rewritten and run.find_missed():
            # A value found in one part is personal everywhere in the request: a
            # name with a cue in the prompt is redacted in a tool result too.
            new_body = walk_request(new_body, api, run.rewrite_known)
        counts = dict(run.counts)
        if run.blocked is not None:
            return Redaction(body=body, counts=counts, blocked=run.blocked)
        return Redaction(
            body=new_body,
            counts=counts,
            compliant_only=run.compliant_only,
            restorer=VaultRestorer(run.vault.values) if run.vault.values else Restorer(),
        )


class _Run:
    """State of one ``redact`` call."""

    __slots__ = (
        "_known",
        "blocked",
        "compliant_only",
        "counts",
        "engine",
        "outputs",
        "rewritten",
        "vault",
    )

    def __init__(self, engine: PiiEngine, vault: Vault) -> None:
        self.engine = engine
        self.vault = vault
        self.counts: Counter[str] = Counter()
        self.blocked: str | None = None
        self.compliant_only = False
        self.rewritten: dict[str, tuple[str, str]] = {}
        """Each value of a contextual type replaced in the first pass → (entity,
        what replaced it)."""
        self._known: re.Pattern[str] | None = None
        self.outputs: list[str] = []
        """Every text part as the first pass left it."""

    def find_missed(self) -> bool:
        """Whether a value of ``rewritten`` is still somewhere in the first pass's
        output (usually not: one substring search per value over the joined
        texts); if so, prepares the second pass's pattern for those values."""
        blob = "\n".join(self.outputs)
        # Usually no value is left at all: one substring search each (C speed) says
        # so, without tokenising the blob (~10-20 µs for a 1 KB prompt).
        found = [v for v in self.rewritten if v in blob]
        if not found:
            return False
        # A whole-word occurrence of a value that starts with a word character
        # starts with a whole word of the blob: the others cannot be rewritten.
        words = set(_WORD.findall(blob))
        missed = []
        for v in found:
            head = _WORD.match(v)
            if head is None or head.group() in words:
                missed.append(v)
        if not missed:
            return False
        missed.sort(key=len, reverse=True)
        alternation = "|".join(map(re.escape, missed))
        self._known = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")
        return True

    def rewrite_known(self, text: str) -> str:
        """Second pass: occurrences the detector did not flag (no cue there) of
        values it flagged elsewhere in the request, as whole words."""
        assert self._known is not None
        if self._known.search(text) is None:
            return text

        def swap(m: re.Match[str]) -> str:
            entity, new = self.rewritten[m.group()]
            self.counts[entity] += 1
            return new

        return self._known.sub(swap, text)

    def rewrite(self, text: str) -> str:
        findings = self.engine.scan(text)
        if not findings:
            self.outputs.append(text)
            return text
        pieces: list[str] = []
        pos = 0
        for f in findings:
            self.counts[f.entity] += 1
            action = self.engine.action_for(f.entity)
            value = text[f.start : f.end]
            if action == _REDACT:
                new = self.vault.placeholder(f.entity, value)
            elif action == _MASK:
                new = mask_value(f.entity, value)
            elif action == _HASH:
                new = hash_value(self.engine._secret, f.entity, value)
            else:
                if action == _BLOCK and self.blocked is None:
                    self.blocked = f.entity
                elif action == _ROUTE_COMPLIANT:
                    self.compliant_only = True
                continue
            if len(value) >= _MIN_KNOWN and f.entity in self.engine.contextual:
                self.rewritten.setdefault(value, (f.entity, new))
            pieces.append(text[pos : f.start])
            pieces.append(new)
            pos = f.end
        if not pieces:
            self.outputs.append(text)
            return text
        pieces.append(text[pos:])
        out = "".join(pieces)
        self.outputs.append(out)
        return out
