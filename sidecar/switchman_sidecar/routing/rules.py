"""Ordered routing rules with CEL conditions, compiled once per route table.

A rule that does not compile makes the whole table invalid (``ValueError``:
the table is NACKed and the previous one stays), because a policy that
silently skips a rule routes traffic somewhere nobody asked for. A rule whose
condition fails at evaluation time (e.g. a header that is absent:
``request.headers["x-tier"]`` raises, CEL has no implicit default) simply does
not match; the explanation says so. Write ``"x-tier" in request.headers &&
...`` to make that explicit.

Variables (camelCase like Kubernetes CEL):

* ``request``: ``model``, ``api``, ``headers`` (lower-cased names),
  ``metadata``, ``inputTokens``, ``maxOutputTokens``, ``needs`` (list),
  ``pii`` (entity types found), ``task`` (task kind)
* ``budget``: ``state`` (Ok | SoftLimited | Exhausted), ``percentUsed``
* ``pii``: the list of entity types (same as ``request.pii``)
* ``task``: the task kind (same as ``request.task``)
* ``now``: a CEL timestamp (UTC); ``time``: ``hour``, ``minute``, ``weekday``
  (0 = Monday), UTC
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switchman_protocol.v1 import routes_pb2

from ._cel import cel
from .types import RouteRequest

__all__ = [
    "CompiledRule",
    "RequestShape",
    "RuleMatch",
    "compile_rules",
    "match_rule",
    "request_fields",
]

#: Top-level names a rule may use.
VARIABLES = frozenset({"request", "budget", "pii", "task", "now", "time"})
#: Variables with few distinct values across requests. Handing a value to CEL costs
#: microseconds (a string ~3 µs, a small map ~14 µs, here), paid again at every
#: evaluation, so a rule that reads only these keeps its contexts, keyed by the values.
CACHEABLE = frozenset({"budget", "pii", "task", "time"})
#: Contexts kept per rule (then it starts over).
MAX_CONTEXTS = 256


#: The fields of ``request``.
_REQUEST_FIELDS = (
    "model",
    "api",
    "headers",
    "metadata",
    "inputTokens",
    "maxOutputTokens",
    "needs",
    "pii",
    "task",
)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: routes_pb2.Rule
    program: Any  # cel.Program (untyped extension)
    uses_task: bool
    cached: tuple[str, ...] = ()
    """The rule's variables when all are in ``CACHEABLE`` or are a ``request`` it reads
    only through ``shape`` (else empty)."""
    contexts: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    """Values of ``cached`` → a ``cel.Context`` holding them."""
    shape: RequestShape | None = None
    """What the rule reads of ``request``, when that is known exactly enough to build
    (and key) only that part; None when it is not, or the rule does not read it."""


@dataclass(frozen=True, slots=True)
class RequestShape:
    """The part of ``request`` one rule can read: its fields, and for ``headers`` and
    ``metadata`` only the keys it names (it indexes them, or asks ``"k" in``, with
    literals). A header map is the costly part of a CEL context (~3 µs per entry,
    measured: a request with 13 headers ~40 µs), and a rule names one or two."""

    fields: tuple[str, ...]
    headers: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule: routes_pb2.Rule | None
    notes: tuple[str, ...] = ()


def compile_rules(rules: list[routes_pb2.Rule] | Any) -> list[CompiledRule]:
    """Compile every rule's condition; ``ValueError`` names the rule that fails."""
    out: list[CompiledRule] = []
    seen: set[str] = set()
    for rule in rules:
        if not rule.name:
            raise ValueError("every routing rule needs a name")
        if rule.name in seen:
            raise ValueError(f"routing rule {rule.name!r} appears twice")
        seen.add(rule.name)
        if not rule.when.strip():
            raise ValueError(f"routing rule {rule.name!r} has no condition")
        try:
            program = cel.compile(rule.when)
        except (ValueError, RuntimeError) as exc:
            first = str(exc).splitlines()[0][:300]
            raise ValueError(f"routing rule {rule.name!r} does not compile: {first}") from exc
        names = set(program.variables())
        shape = _request_shape(rule.when) if "request" in names else None
        cacheable = CACHEABLE | {"request"} if shape is not None else CACHEABLE
        out.append(
            CompiledRule(
                rule=rule,
                program=program,
                uses_task="task" in names
                or ("request" in names and (shape is None or "task" in shape.fields)),
                cached=tuple(sorted(names)) if names and names <= cacheable else (),
                shape=shape,
            )
        )
    return out


#: A string literal that can only be a plain header or metadata key (no escapes, not
#: part of a triple-quoted, raw or bytes literal: nothing may touch its opening quote).
_KEY = r"""(?<![\w"'\\])(["'])([A-Za-z0-9_.\-]*)\{q}"""


def _literal_keys(source: str, name: str) -> frozenset[str] | None:
    """The keys a rule reads of the map ``request.<name>``, when its every mention of
    ``name`` is ``request.<name>["key"]`` or ``"key" in request.<name>``; None when it
    uses the map any other way (size, iteration, ``has``, a computed key, ...).

    Over-estimates are safe (a key named where it is not read is only carried along);
    an under-estimate would change a rule's answer, hence the fallback to None."""
    mentions = {m.start() for m in re.finditer(rf"\b{name}\b", source)}
    covered: set[int] = set()
    keys: set[str] = set()
    index = re.compile(rf"\brequest\s*\.\s*({name})\s*\[\s*" + _KEY.format(q=2) + r"\s*\]")
    for m in index.finditer(source):
        covered.add(m.start(1))
        keys.add(m.group(3))
    member = re.compile(_KEY.format(q=1) + rf"\s+in\s+request\s*\.\s*({name})\b")
    for m in member.finditer(source):
        covered.add(m.start(3))
        keys.add(m.group(2))
    return frozenset(keys) if mentions <= covered else None


_FIELD_SELECT = re.compile(r"\brequest\b(?!\s*\.\s*(?:" + "|".join(_REQUEST_FIELDS) + r")\b)")


def _request_shape(source: str) -> RequestShape | None:
    """What a rule reads of ``request``, or None unless it only ever selects known fields
    (``request.model``, ...): ``size(request)`` or ``"model" in request`` keep the
    shared context, whose fields are those every rule mentions."""
    if _FIELD_SELECT.search(source):
        return None
    fields = tuple(f for f in _REQUEST_FIELDS if re.search(rf"\b{f}\b", source))
    keys: dict[str, tuple[str, ...]] = {}
    for name in ("headers", "metadata"):
        if name in fields:
            found = _literal_keys(source, name)
            if found is None:
                return None
            keys[name] = tuple(sorted(found))
    return RequestShape(fields, keys.get("headers", ()), keys.get("metadata", ()))


def request_fields(rules: list[CompiledRule]) -> frozenset[str]:
    """Fields of ``request`` that some rule's source mentions (a cheap over-estimate).

    Converting the headers map to CEL is the most expensive part of a rule
    evaluation, so ``request`` only carries what the rules can read.
    """
    sources = " ".join(r.rule.when for r in rules)
    return frozenset(f for f in _REQUEST_FIELDS if f in sources)


def _request_value(request: RouteRequest, task: str, name: str) -> Any:
    if name == "model":
        return request.model
    if name == "api":
        return request.api
    if name == "headers":
        return dict(request.headers)
    if name == "metadata":
        return dict(request.metadata)
    if name == "inputTokens":
        return request.input_tokens
    if name == "maxOutputTokens":
        return request.max_output_tokens or 0
    if name == "needs":
        return sorted(request.needs)
    if name == "pii":
        return sorted(request.pii_types)
    return task


class _Values:
    """The rule variables of one request, built only when a rule reads them.

    Converting every variable to CEL up front costs ~25 µs per request (the
    headers map dominates); most rules read one or two names.
    """

    __slots__ = ("_cache", "_fields", "_request", "_task", "_when")

    def __init__(self, request: RouteRequest, task: str, fields: frozenset[str]) -> None:
        self._request = request
        self._task = task
        self._fields = fields
        self._cache: dict[str, Any] = {}
        self._when: dt.datetime | None = None

    def get(self, name: str) -> Any:
        cache = self._cache
        if name not in cache:
            cache[name] = self._build(name)
        return cache[name]

    def key(self, name: str) -> Any:
        """A hashable stand-in for ``get(name)`` (a ``CACHEABLE`` name): equal keys,
        equal values, down to the type (``repr`` tells 42 from 42.0 and -0.0 from 0.0)."""
        request = self._request
        if name == "budget":
            budget = request.budget
            return (repr(budget.state), repr(budget.percent_used))
        if name == "pii":
            return tuple(sorted(request.pii_types))
        if name == "task":
            return self._task
        when = self._now()
        return (when.hour, when.minute, when.weekday())  # time

    def request_value(self, shape: RequestShape) -> dict[str, Any]:
        """``request`` with only what ``shape`` says the rule can read."""
        request = self._request
        out: dict[str, Any] = {}
        for f in shape.fields:
            if f == "headers":
                have = request.headers
                out[f] = {k: have[k] for k in shape.headers if k in have}
            elif f == "metadata":
                have = request.metadata
                out[f] = {k: have[k] for k in shape.metadata if k in have}
            else:
                out[f] = _request_value(request, self._task, f)
        return out

    def _now(self) -> dt.datetime:
        if self._when is None:
            request = self._request
            ts = request.now if request.now is not None else dt.datetime.now(dt.UTC).timestamp()
            self._when = dt.datetime.fromtimestamp(ts, dt.UTC)
        return self._when

    def _build(self, name: str) -> Any:
        request = self._request
        if name == "request":
            return {f: _request_value(request, self._task, f) for f in self._fields}
        if name == "budget":
            return {"state": request.budget.state, "percentUsed": request.budget.percent_used}
        if name == "pii":
            return sorted(request.pii_types)
        if name == "task":
            return self._task
        if name in ("now", "time"):
            when = self._now()
            if name == "now":
                return when
            return {"hour": when.hour, "minute": when.minute, "weekday": when.weekday()}
        return None

    def context(self) -> Any:  # cel.Context
        """A context that asks for each variable when an expression reads it."""
        ctx = cel.Context()
        ctx.set_variable_resolver(self.get)
        return ctx


def _frozen(value: dict[str, Any]) -> tuple[Any, ...]:
    """A hashable stand-in for a shaped ``request``: equal keys, equal values, down to
    the type (``repr``, as ``_Values.key``); a map by its items (only present keys)."""
    return tuple(
        (f, tuple(v.items()) if isinstance(v, dict) else repr(v)) for f, v in value.items()
    )


def _cached_context(compiled: CompiledRule, values: _Values) -> Any:  # cel.Context
    # A cached rule reads ``request`` only when it has a shape (``compile_rules``).
    request = values.request_value(compiled.shape) if compiled.shape is not None else {}
    key = tuple(
        _frozen(request) if name == "request" else values.key(name) for name in compiled.cached
    )
    contexts = compiled.contexts
    ctx = contexts.get(key)
    if ctx is None:
        ctx = cel.Context(
            {name: request if name == "request" else values.get(name) for name in compiled.cached}
        )
        if len(contexts) >= MAX_CONTEXTS:
            contexts.clear()
        contexts[key] = ctx
    return ctx


def match_rule(
    rules: list[CompiledRule],
    request: RouteRequest,
    task: Callable[[], str],
    fields: frozenset[str] = frozenset(_REQUEST_FIELDS),
) -> RuleMatch:
    """The first rule whose condition is true, with notes on rules that errored."""
    if not rules:
        return RuleMatch(None)
    kind = task() if any(r.uses_task for r in rules) else ""
    values = _Values(request, kind, fields)
    ctx = None
    notes: list[str] = []
    for compiled in rules:
        if compiled.cached:
            context = _cached_context(compiled, values)
        else:
            if ctx is None:
                ctx = values.context()
            context = ctx
        try:
            result = compiled.program.execute(context)
        except Exception as exc:  # CEL raises KeyError/TypeError/ValueError/RuntimeError
            notes.append(f"rule {compiled.rule.name}: not evaluated ({type(exc).__name__}: {exc})")
            continue
        if result is True:
            return RuleMatch(compiled.rule, tuple(notes))
        if not isinstance(result, bool):
            notes.append(f"rule {compiled.rule.name}: condition is not a bool ({result!r})")
    return RuleMatch(None, tuple(notes))
