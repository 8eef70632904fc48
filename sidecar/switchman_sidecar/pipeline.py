"""The request pipeline shared by every API (DESIGN §5):

admission → PII redaction → route decision → send with retries, fallback and
circuit breaking → usage, cost, one usage record. The API handlers (chat,
messages, embeddings, responses) only translate shapes around it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from switchman_protocol.v1 import routes_pb2, usage_pb2
from switchman_sidecar.adapters import Adapter, UpstreamCall
from switchman_sidecar.adapters.base import StreamDecoder, context_exceeded
from switchman_sidecar.adapters.openai import OpenAIPassthroughDecoder
from switchman_sidecar.budget import Admission, BudgetGate
from switchman_sidecar.deadlines import DeadlineWatch
from switchman_sidecar.http.client import (
    Origin,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamError,
    UpstreamResponse,
)
from switchman_sidecar.metrics import Metrics
from switchman_sidecar.pii import Redaction
from switchman_sidecar.ratelimit import RateLimiter
from switchman_sidecar.resilience import backoff_s, retry_after_s
from switchman_sidecar.route_request import BUDGET_OK, LazyPromptRequest
from switchman_sidecar.routing import BudgetView, RouteDecision
from switchman_sidecar.settings import SidecarSettings
from switchman_sidecar.table import CompiledTable, ModelFacts, TableStore
from switchman_sidecar.usage import Usage, UsageSink, estimate_tokens

__all__ = ["ApiError", "Exchange", "Pipeline", "StreamAttempt"]

T = TypeVar("T")
_BOOT = os.urandom(4).hex()
_COUNTER = itertools.count(1)
OUTCOMES: dict[int, str] = {
    usage_pb2.OUTCOME_SUCCESS: "success",
    usage_pb2.OUTCOME_UPSTREAM_ERROR: "upstream_error",
    usage_pb2.OUTCOME_CLIENT_ABORTED: "client_aborted",
    usage_pb2.OUTCOME_REJECTED: "rejected",
}


class ApiError(Exception):
    """A request that ends in an error response (shaped by the API handler)."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.headers = headers or []


class _Failure(Exception):
    def __init__(self, cause: str, retryable: bool, breaker: bool, error: ApiError) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retryable = retryable
        self.breaker = breaker
        self.error = error
        self.retry_after: float | None = None
        self.fatal = False
        self.next_model = False


@dataclass(slots=True)
class Exchange:
    """Everything known about one request; becomes its usage record."""

    api: str
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    table: CompiledTable | None = None
    requested: str = ""
    redaction: Redaction | None = None
    decision: RouteDecision | None = None
    admission: Admission | None = None
    model: routes_pb2.Model | None = None
    facts: ModelFacts | None = None
    """The answering model's fields (set with ``model``)."""
    provider: str = ""
    tried: list[str] = field(default_factory=list)
    attempts: int = 0
    """Upstream attempts made (0: refused before anything left the pod)."""
    input_estimate: int = 0
    out_chars: int = 0
    usage: Usage | None = None
    cost: float = 0.0
    streamed: bool = False
    outcome: int = usage_pb2.OUTCOME_REJECTED
    status: int = 0
    elapsed: float = 0.0
    """Seconds from the request to its end (set by ``finish``)."""
    reserved: dict[str, int] | None = None
    """Tokens taken from a model's TPM bucket (settled with the real usage at the end)."""
    prior: PriorAttempt | None = None
    """An attempt the native lane made and lost (lane.py); failover counts it first."""

    def decision_lines(self) -> bytes:
        """``decision_headers`` encoded as header lines; the common case (no
        fallbacks, no score, no PII) is cached apart from the request id."""
        facts = self.facts
        decision = self.decision
        if (
            facts is None
            or decision is None
            or self.tried
            or decision.score is not None
            or (self.redaction is not None and self.redaction.counts)
        ):
            return "".join([f"{k}: {v}\r\n" for k, v in self.decision_headers()]).encode("latin-1")
        key = (facts.name, facts.provider, decision.reason)
        tail = _DECISION_LINES.get(key)
        if tail is None:
            model, provider, reason = key
            tail = (
                f"x-switchman-model: {model}\r\nx-switchman-provider: {provider}\r\n"
                f"x-switchman-reason: {reason}\r\nx-switchman-fallbacks: 0\r\n"
                "x-switchman-cache: miss\r\n"
            ).encode("latin-1")
            if len(_DECISION_LINES) < 1024:
                _DECISION_LINES[key] = tail
        return b"x-switchman-request-id: %s\r\n%s" % (self.request_id.encode("latin-1"), tail)

    def decision_headers(self) -> list[tuple[str, str]]:
        headers = [("x-switchman-request-id", self.request_id)]
        if self.facts is not None:
            headers.append(("x-switchman-model", self.facts.name))
            headers.append(("x-switchman-provider", self.provider))
        if self.decision is not None:
            headers.append(("x-switchman-reason", self.decision.reason))
            if self.decision.score is not None:
                headers.append(("x-switchman-score", f"{self.decision.score:.4f}"))
        headers.append(("x-switchman-fallbacks", str(self.fallbacks)))
        if self.tried:
            headers.append(("x-switchman-tried", ",".join(self.tried)))
        if self.redaction is not None and self.redaction.counts:
            headers.append(("x-switchman-pii-count", str(sum(self.redaction.counts.values()))))
        headers.append(("x-switchman-cache", "miss"))
        return headers

    def answered_by(self, facts: ModelFacts) -> None:
        """The model whose answer (or final error) the client gets."""
        self.model = facts.model
        self.facts = facts
        self.provider = facts.provider

    @property
    def fallbacks(self) -> int:
        if not self.tried:
            return 0
        names = {t.split(":", 1)[0] for t in self.tried}
        if self.facts is not None:
            names.discard(self.facts.name)
        return len(names)


@dataclass(frozen=True, slots=True)
class PriorAttempt:
    """The native lane's failed attempt at a request it then handed over: the
    first attempt ``failover`` counts, as if this process had made it."""

    model: str
    cause: str
    """``connect``, ``reset``, ``timeout`` or ``http`` (the provider answered ``status``)."""
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Answered:
    """What ``Pipeline._classify`` reads of an answer, for a ``PriorAttempt``."""

    __slots__ = ("headers", "status")

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers


@dataclass(slots=True)
class StreamAttempt:
    model: routes_pb2.Model
    adapter: Adapter
    response: UpstreamResponse
    decoder: StreamDecoder | OpenAIPassthroughDecoder
    chunks: AsyncIterator[bytes]
    first: list[Any]
    """What the decoder made of the first read that held a chunk (dicts, or event bytes)."""


class AnswerLog(Protocol):
    """Which model answered which request (feedback.FeedbackLog)."""

    def submit(self, record: usage_pb2.UsageRecord) -> None: ...

    def answered(
        self, request_id: str, model: str, task_kind: str, reason: str, outcome: int
    ) -> None: ...


_DECISION_LINES: dict[tuple[str, str, str], bytes] = {}
_NO_USAGE = Usage()
"""Read-only stand-in for a request that used nothing."""
_NO_PII: frozenset[str] = frozenset()
_BUDGET_STATES = {2: "SoftLimited", 3: "Exhausted"}


def _needs(body: dict[str, Any]) -> frozenset[str]:
    needs = set()
    if body.get("tools"):
        needs.add("tools")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        needs.add("json")
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") in ("image_url", "image") for p in content
        ):
            needs.add("vision")
            break
    return frozenset(needs)


class Pipeline:
    """One per process; holds the long-lived pieces every request uses."""

    def __init__(
        self,
        settings: SidecarSettings,
        store: TableStore,
        client: UpstreamClient,
        budget: BudgetGate,
        sink: UsageSink,
        metrics: Metrics,
        access_log: Callable[[Exchange], None] | None = None,
        usage_log: UsageSink | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.budget = budget
        self.sink = sink
        self.metrics = metrics
        self.access_log = access_log
        """One line per request (with its usage); None = off."""
        self.usage_log = usage_log
        """Logs usage records (the request's own only when there is no access log)."""
        self.answers: AnswerLog | None = None
        """Told which model answered each request (routing feedback, feedback.py)."""
        self.on_answer: (
            Callable[[Exchange, dict[str, Any], dict[str, Any], dict[str, str]], None] | None
        ) = None
        """Called after a non-streamed chat answer is sent (shadow routing, shadow.py)."""
        self.emit_feedback: Callable[[str, str, str, float, str], None] | None = None
        """(request id, model, task kind, score, source) -> the router learner (feedback.py)."""
        self.deadlines = DeadlineWatch()
        self.limits = RateLimiter()
        """Per-model RPM/TPM buckets of this process (ratelimit.py)."""

    def new_exchange(self, api: str, headers: dict[str, str]) -> Exchange:
        rid = headers.get("x-request-id") or f"{_BOOT}-{next(_COUNTER)}"
        return Exchange(api=api, request_id=rid[:128])

    # before sending -------------------------------------------------------
    def prepare(
        self, ex: Exchange, body: dict[str, Any], headers: dict[str, str], raw_len: int
    ) -> tuple[dict[str, Any], list[routes_pb2.Model]]:
        """Redaction, routing, admission. Returns the body to send and the candidates."""
        table = self.store.current
        if table is None:
            raise ApiError(503, "the sidecar has no route table yet", "server_error", "not_ready")
        ex.table = table
        requested = body.get("model", "")
        ex.requested = requested if type(requested) is str else str(requested)
        if table.pii.enabled:
            # The messages API was already translated to the canonical chat shape.
            redaction = table.pii.redact(body, "chat" if ex.api == "messages" else ex.api)
            ex.redaction = redaction
            if redaction.blocked:
                raise ApiError(
                    400,
                    f"request blocked by the PII policy: it contains {redaction.blocked}",
                    code="pii_blocked",
                )
            body = redaction.body
        ex.input_estimate = estimate_tokens(raw_len)
        max_out = (
            body.get("max_completion_tokens")
            or body.get("max_tokens")
            or body.get("max_output_tokens")
        )
        gate_state = self.budget.state
        budget_view = BUDGET_OK
        if gate_state is not None:
            budget_view = BudgetView(
                state=_BUDGET_STATES.get(int(gate_state.condition), "Ok"),
                percent_used=gate_state.percent_used,
            )
        decision = table.router.decide(
            LazyPromptRequest(
                body if ex.api != "embeddings" else None,
                model=ex.requested,
                api=ex.api,
                headers=headers,
                input_tokens=ex.input_estimate,
                max_output_tokens=int(max_out) if isinstance(max_out, int) else None,
                needs=_needs(body),
                pii_types=frozenset(ex.redaction.counts) if ex.redaction else _NO_PII,
                budget=budget_view,
            )
        )
        ex.decision = decision
        if decision.reject:
            raise ApiError(403, decision.reject, "permission_error", "rejected_by_policy")
        if not decision.candidates:
            raise ApiError(
                404,
                f"The model `{ex.requested}` does not exist or this pod may not use it",
                code="model_not_found",
                param="model",
            )
        if decision.max_output_tokens and ex.api in ("chat", "messages"):
            key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
            body = {
                **body,
                key: min(int(max_out or decision.max_output_tokens), decision.max_output_tokens),
            }
            max_out = body[key]
        candidates = self._filter(ex, table, decision.candidates)
        if gate_state is None:
            # No budget for this pod (standalone, or not told yet): nothing to reserve.
            # ``finish`` still hands the cost to the gate if a state arrives meanwhile.
            return body, [f.model for f in candidates]
        worst = max(
            f.cost(
                Usage(input=ex.input_estimate, output=int(max_out or f.max_output_tokens or 4096))
            )
            for f in candidates
        )
        admission = self.budget.admit(table.team, worst)
        ex.admission = admission
        if not admission.allowed:
            raise ApiError(
                429,
                admission.reason or f"team {table.team!r} has exhausted its budget",
                "insufficient_quota",
                "budget_exceeded",
            )
        models = [f.model for f in candidates]
        if admission.downgrade_model and admission.downgrade_model in table.models:
            down = table.models[admission.downgrade_model]
            models = [down, *[m for m in models if m.name != down.name]]
        return body, models

    def _filter(self, ex: Exchange, table: CompiledTable, names: list[str]) -> list[ModelFacts]:
        out = []
        need_compliant = ex.redaction is not None and ex.redaction.compliant_only
        compliant = set(table.table.pii.compliant_tags) if need_compliant else set()
        too_small = False
        kind = "chat" if ex.api == "messages" else ex.api
        facts = table.facts
        for name in names:
            f = facts.get(name)
            if f is None:
                continue
            if need_compliant and not compliant.intersection(f.model.compliance):
                ex.tried.append(f"{name}:not-compliant")
                continue
            if kind not in f.adapter.supports:
                ex.tried.append(f"{name}:no-{ex.api}-api")
                continue
            if f.context_window and ex.input_estimate > f.context_window:
                ex.tried.append(f"{name}:context-window")
                too_small = True
                continue
            out.append(f)
        if not out:
            if too_small:
                raise ApiError(
                    400,
                    "the prompt is longer than the context window of every model this pod may use",
                    code="context_length_exceeded",
                    param="messages",
                )
            raise ApiError(
                400,
                f"no model this pod may use can serve this {ex.api} request "
                f"({', '.join(ex.tried)})",
                code="no_eligible_model",
            )
        return out

    # sending --------------------------------------------------------------
    def _forwarded(self, headers: dict[str, str]) -> list[tuple[str, str]]:
        prefixes = self.settings.forward_header_prefixes
        if not prefixes:
            return []
        return [(k, v) for k, v in headers.items() if k.startswith(prefixes)]

    def _send(
        self, origin: Origin, call: UpstreamCall, fwd: list[tuple[str, str]]
    ) -> Awaitable[UpstreamResponse]:
        return self.client.request(
            "POST", origin, call.target, call.headers + fwd if fwd else call.headers, call.body
        )

    def _classify(
        self,
        model: routes_pb2.Model,
        adapter: Adapter,
        resp: UpstreamResponse | _Answered,
        raw: bytes,
    ) -> _Failure:
        status = resp.status
        message = adapter.error_message(raw)
        upstream = f"{model.name}: {message}"
        if status == 429:
            f = _Failure(
                "429",
                True,
                False,
                ApiError(429, upstream, "rate_limit_exceeded", "rate_limit_exceeded"),
            )
            f.retry_after = retry_after_s(resp.headers.get("retry-after"))
            if f.retry_after is not None:
                f.error.headers.append(("retry-after", str(max(1, round(f.retry_after)))))
            return f
        if status >= 500 or status == 408:
            return _Failure(
                f"http-{status}",
                True,
                status >= 500,
                ApiError(502, upstream, "server_error", "upstream_error"),
            )
        if status == 400 and context_exceeded(raw):
            f = _Failure(
                "context-window",
                False,
                False,
                ApiError(400, upstream, code="context_length_exceeded"),
            )
            f.next_model = True
            return f
        if status in (401, 403, 404):
            f = _Failure(
                f"http-{status}",
                False,
                False,
                ApiError(502, upstream, "server_error", "upstream_error"),
            )
            f.next_model = True
            return f
        f = _Failure(f"http-{status}", False, False, ApiError(status, upstream))
        f.fatal = True
        return f

    def _prior_failure(
        self, model: routes_pb2.Model, adapter: Adapter, prior: PriorAttempt
    ) -> _Failure:
        """A ``PriorAttempt`` as the failure ``failover`` would have seen itself."""
        if prior.cause == "http":
            answered = _Answered(prior.status, prior.headers)
            return self._classify(model, adapter, answered, prior.body)
        if prior.cause == "connect":
            error = ApiError(
                502, f"{model.name}: cannot connect", "server_error", "upstream_unreachable"
            )
        elif prior.cause == "timeout":
            error = ApiError(504, f"{model.name}: upstream timed out", "server_error", "timeout")
        else:
            error = ApiError(
                502, f"{model.name}: connection lost", "server_error", "upstream_error"
            )
        return _Failure(prior.cause, True, True, error)

    async def failover(
        self,
        ex: Exchange,
        candidates: list[routes_pb2.Model],
        attempt: Callable[[routes_pb2.Model, Adapter], Awaitable[T]],
    ) -> T:
        """Tries candidates in order, retrying each on retryable failures."""
        assert ex.table is not None
        table = ex.table
        policy = table.policy
        now = time.monotonic()
        deadline = now + policy.total_timeout_s
        last: ApiError | None = None
        limited: ApiError | None = None
        limited_wait = 0.0
        facts = table.facts
        breakers = self.store.breakers
        for position, model in enumerate(candidates):
            fact = facts[model.name]
            breaker = breakers.get(fact.endpoint)
            last_candidate = position == len(candidates) - 1
            if position:
                now = time.monotonic()
            if not breaker.allow(policy, now) and not last_candidate:
                ex.tried.append(f"{fact.name}:circuit-open")
                continue
            wait = self.limits.acquire(model, ex.input_estimate, now) if fact.limited else 0.0
            if wait > 0:
                # Over this pod's RPM/TPM for the model: skip it like an open circuit.
                breaker.release()  # a half-open probe slot it may have taken stays free
                ex.tried.append(f"{model.name}:rate-limited")
                if limited is None or wait < limited_wait:
                    limited_wait = wait
                    limited = ApiError(
                        429,
                        f"rate limit of {model.name} reached "
                        f"(rpm {model.limits.rpm or '-'}, tpm {model.limits.tpm or '-'}); "
                        f"retry in {math.ceil(wait)} s",
                        "rate_limit_exceeded",
                        "rate_limit_exceeded",
                        headers=[("retry-after", str(max(1, math.ceil(wait))))],
                    )
                continue
            if fact.limited:
                if ex.reserved is None:
                    ex.reserved = {}
                ex.reserved[fact.name] = ex.input_estimate
            adapter = fact.adapter
            retries = 0
            prior = ex.prior if ex.prior is not None and ex.prior.model == fact.name else None
            ex.prior = None
            while True:
                remaining = deadline - (now if not retries else time.monotonic())
                if remaining <= 0:
                    raise ApiError(
                        504,
                        "the total timeout elapsed before any model answered",
                        "server_error",
                        "timeout",
                    )
                t0 = time.perf_counter()
                ex.attempts += 1
                table.router.start(fact.name)  # load for the latency strategy
                if prior is not None:
                    # The native lane's attempt (lane.py): counted as this one.
                    failure, prior = self._prior_failure(model, adapter, prior), None
                else:
                    try:
                        scope = self.deadlines.timeout(min(policy.per_try_timeout_s, remaining))
                        if scope.enter():  # no async with: two coroutines fewer per attempt
                            try:
                                result = await attempt(model, adapter)
                            except BaseException as exc:
                                scope.exit(type(exc), exc)  # TimeoutError if the deadline hit
                                raise
                            scope.exit(None, None)
                        else:
                            async with scope:
                                result = await attempt(model, adapter)
                        breaker.record(True, policy, 0.0)  # a success does not read the clock
                        table.router.observe(fact.name, (time.perf_counter() - t0) * 1000, True)
                        ex.answered_by(fact)
                        return result
                    except _Failure as f:
                        failure = f
                    except TimeoutError:
                        failure = _Failure(
                            "timeout",
                            True,
                            True,
                            ApiError(
                                504, f"{model.name}: upstream timed out", "server_error", "timeout"
                            ),
                        )
                    except UpstreamConnectError as exc:
                        failure = _Failure(
                            "connect",
                            True,
                            True,
                            ApiError(
                                502, f"{model.name}: {exc}", "server_error", "upstream_unreachable"
                            ),
                        )
                    except UpstreamError as exc:
                        failure = _Failure(
                            "reset",
                            True,
                            True,
                            ApiError(502, f"{model.name}: {exc}", "server_error", "upstream_error"),
                        )
                    except asyncio.CancelledError:
                        breaker.release()  # a cancelled probe tells nothing about the endpoint
                        raise
                breaker.record(not failure.breaker, policy, time.monotonic())
                table.router.observe(fact.name, (time.perf_counter() - t0) * 1000, False)
                self.metrics.upstream_failures.labels(fact.name, failure.cause).inc()
                ex.tried.append(f"{fact.name}:{failure.cause}")
                last = failure.error
                if failure.fatal:
                    ex.answered_by(fact)
                    raise failure.error
                if not failure.retryable or retries >= policy.max_retries:
                    break
                delay = (
                    failure.retry_after
                    if failure.retry_after is not None
                    else backoff_s(policy, retries)
                )
                if failure.retry_after is not None and delay > policy.backoff_max_s:
                    # Honour Retry-After without holding the client: fall back, or hand
                    # the 429 (with its Retry-After) to the client when nothing is left.
                    break
                if delay >= deadline - time.monotonic():
                    break
                retries += 1
                await asyncio.sleep(delay)
        raise (
            last
            or limited
            or ApiError(502, "no model could answer", "server_error", "upstream_error")
        )

    async def unary(
        self,
        ex: Exchange,
        candidates: list[routes_pb2.Model],
        build: Callable[[Adapter, routes_pb2.Model, Origin], UpstreamCall],
        headers: dict[str, str],
    ) -> tuple[routes_pb2.Model, Adapter, bytes]:
        fwd = self._forwarded(headers)
        assert ex.table is not None
        table = ex.table

        async def attempt(
            model: routes_pb2.Model, adapter: Adapter
        ) -> tuple[routes_pb2.Model, Adapter, bytes]:
            origin = table.facts[model.name].origin
            resp = await self._send(origin, build(adapter, model, origin), fwd)
            try:
                raw = await resp.read()
            finally:
                resp.close()
            if resp.status != 200:
                raise self._classify(model, adapter, resp, raw)
            return model, adapter, raw

        return await self.failover(ex, candidates, attempt)

    async def open_stream(
        self,
        ex: Exchange,
        candidates: list[routes_pb2.Model],
        build: Callable[[Adapter, routes_pb2.Model, Origin], UpstreamCall],
        decoder: Callable[[Adapter, routes_pb2.Model], StreamDecoder | OpenAIPassthroughDecoder],
        headers: dict[str, str],
    ) -> StreamAttempt:
        """Returns once the first chunk is in hand: until then failover is invisible."""
        fwd = self._forwarded(headers)
        assert ex.table is not None
        table = ex.table

        async def attempt(model: routes_pb2.Model, adapter: Adapter) -> StreamAttempt:
            origin = table.facts[model.name].origin
            resp = await self._send(origin, build(adapter, model, origin), fwd)
            if resp.status != 200:
                try:
                    raw = await resp.read()
                finally:
                    resp.close()
                raise self._classify(model, adapter, resp, raw)
            dec = decoder(adapter, model)
            chunks = resp.chunks()
            try:
                async for data in chunks:
                    first = dec.feed(data)
                    if first:
                        return StreamAttempt(model, adapter, resp, dec, chunks, first)
            except BaseException:
                resp.close()
                raise
            resp.close()
            raise UpstreamError("the stream ended before its first chunk")

        return await self.failover(ex, candidates, attempt)

    # after ----------------------------------------------------------------
    def _cost(self, ex: Exchange) -> float:
        if ex.usage is not None and ex.facts is not None:
            ex.cost = ex.facts.cost(ex.usage)
        return ex.cost

    def cost_header(self, ex: Exchange) -> tuple[str, str]:
        return ("x-switchman-cost", f"{self._cost(ex):.8f}")

    def cost_line(self, ex: Exchange) -> bytes:
        """``cost_header`` as an encoded header line."""
        return b"x-switchman-cost: %.8f\r\n" % self._cost(ex)

    def submit_record(self, record: usage_pb2.UsageRecord) -> None:
        """A usage record besides the request's own (cascade steps, shadow requests)."""
        self.metrics.attempt(
            record.model,
            _attempt_kind(record),
            (
                record.input_tokens,
                record.cached_input_tokens,
                record.output_tokens,
                record.reasoning_tokens,
            ),
            record.cost,
        )
        self.sink.submit(record)
        if self.answers is not None:
            self.answers.submit(record)
        if self.usage_log is not None:
            self.usage_log.submit(record)

    def finish(self, ex: Exchange) -> None:
        """Exactly once per request: cost, budget settlement, usage record, metrics, log.

        The record is a protobuf only when a sink takes protobufs (the operator's
        reporter, tests): the standalone path (log line, feedback, metrics) reads
        plain values, as building a record and reading it back cost more than the
        rest of this method.
        """
        usage = ex.usage or _NO_USAGE
        facts = ex.facts
        if facts is not None:  # set with ex.model by answered_by()
            ex.cost = facts.cost(usage)
            name = facts.name
        else:
            name = ex.requested
        if ex.admission is not None:
            self.budget.settle(ex.admission, ex.cost)
        elif ex.cost:
            self.budget.spent(ex.cost)  # admitted without a budget state; one arrived since
        if ex.reserved is not None and name in ex.reserved:
            self.limits.settle(
                name, ex.reserved[name], usage.input + usage.output, time.monotonic()
            )
        ex.elapsed = elapsed = time.perf_counter() - ex.started
        decision = ex.decision
        reason = decision.reason if decision is not None else ""
        task_kind = decision.task_kind if decision is not None else ""
        sink = self.sink
        record = None
        # An empty FanoutUsageSink is false: build the record only if someone takes it.
        if sink or (self.access_log is None and self.usage_log is not None):
            table = ex.table
            record = usage_pb2.UsageRecord(
                request_id=ex.request_id,
                timestamp_ms=int(time.time() * 1000),
                team=table.team if table is not None else "",
                model=name,
                provider=ex.provider,
                input_tokens=usage.input,
                cached_input_tokens=usage.cached,
                output_tokens=usage.output,
                reasoning_tokens=usage.reasoning,
                cost=ex.cost,
                streamed=ex.streamed,
                outcome=ex.outcome,  # type: ignore[arg-type]
                estimated=usage.estimated,
                fallbacks=ex.fallbacks,
                reason=reason,
                task_kind=task_kind,
                latency_ms=int(elapsed * 1000),
            )
            if ex.redaction is not None and ex.redaction.counts:
                record.pii_counts.update(ex.redaction.counts)
            sink.submit(record)
        if self.answers is not None:
            self.answers.answered(ex.request_id, name, task_kind, reason, ex.outcome)
        if ex.redaction is not None and ex.redaction.counts:
            self.metrics.pii(ex.redaction.counts)
        self.metrics.observe(
            ex.api,
            name,
            ex.provider,
            OUTCOMES.get(ex.outcome, "unknown"),
            elapsed,
            (usage.input, usage.cached, usage.output, usage.reasoning),
            ex.cost,
        )
        # One log line per request: the access line carries the usage fields too.
        if self.access_log is not None:
            self.access_log(ex)
        elif self.usage_log is not None and record is not None:
            self.usage_log.submit(record)


def _attempt_kind(record: usage_pb2.UsageRecord) -> str:
    """What an extra attempt was, for the metrics label: the last part of its
    reason (``<reason>/cascade``, ``cascade-check``, ``ensemble-judge``, ...)."""
    if record.shadow:
        return "shadow"
    kind = record.reason.rpartition("/")[2]
    return kind if kind in _ATTEMPT_KINDS else "other"


_ATTEMPT_KINDS = frozenset(("cascade", "cascade-check", "ensemble", "ensemble-judge"))
