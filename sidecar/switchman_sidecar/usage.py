"""Token usage: normalised across providers, priced, and handed to a sink.

Every request yields exactly one ``UsageRecord`` (protocol usage.proto). The
sink is the seam to the control plane: standalone mode logs records; the
operator client (switchman_sidecar.control) plugs a gRPC reporter in.

Estimates: when a provider reports nothing (a cut stream, an aborted stream,
a server without usage), tokens are estimated as ceil(characters / 4) — the
rule of thumb OpenAI documents for English text. tiktoken would be closer but
downloads its vocabulary at run time, which a pod must not depend on. Records
carry ``estimated = true`` so the operator can tell.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from switchman_protocol.v1 import routes_pb2, usage_pb2
from switchman_sidecar.logbuf import LineBuffer

__all__ = [
    "InMemoryUsageSink",
    "LogUsageSink",
    "Usage",
    "UsageSink",
    "cost_of",
    "estimate_tokens",
    "usage_from_anthropic",
    "usage_from_gemini",
    "usage_from_openai",
    "usage_from_responses",
]

log = logging.getLogger("switchman.usage")


@dataclass(slots=True)
class Usage:
    """Provider-neutral counts. ``input`` includes ``cached``; ``output`` includes ``reasoning``."""

    input: int = 0
    cached: int = 0
    output: int = 0
    reasoning: int = 0
    estimated: bool = False


def estimate_tokens(chars: int) -> int:
    return (chars + 3) // 4


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def usage_from_openai(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    pd = u.get("prompt_tokens_details") or {}
    cd = u.get("completion_tokens_details") or {}
    return Usage(
        input=_int(u.get("prompt_tokens")),
        cached=_int(pd.get("cached_tokens")) if isinstance(pd, dict) else 0,
        output=_int(u.get("completion_tokens")),
        reasoning=_int(cd.get("reasoning_tokens")) if isinstance(cd, dict) else 0,
    )


def usage_from_responses(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    idt = u.get("input_tokens_details") or {}
    odt = u.get("output_tokens_details") or {}
    return Usage(
        input=_int(u.get("input_tokens")),
        cached=_int(idt.get("cached_tokens")) if isinstance(idt, dict) else 0,
        output=_int(u.get("output_tokens")),
        reasoning=_int(odt.get("reasoning_tokens")) if isinstance(odt, dict) else 0,
    )


def usage_from_anthropic(u: Any) -> Usage | None:
    """Anthropic reports uncached input separately from cache reads and writes."""
    if not isinstance(u, dict):
        return None
    read = _int(u.get("cache_read_input_tokens"))
    write = _int(u.get("cache_creation_input_tokens"))
    return Usage(
        input=_int(u.get("input_tokens")) + read + write,
        cached=read,
        output=_int(u.get("output_tokens")),
    )


def usage_from_gemini(u: Any) -> Usage | None:
    """Gemini counts thinking tokens apart from candidates; we fold them into output."""
    if not isinstance(u, dict):
        return None
    thoughts = _int(u.get("thoughtsTokenCount"))
    return Usage(
        input=_int(u.get("promptTokenCount")),
        cached=_int(u.get("cachedContentTokenCount")),
        output=_int(u.get("candidatesTokenCount")) + thoughts,
        reasoning=thoughts,
    )


def cost_of(usage: Usage, price: routes_pb2.Price) -> float:
    """US dollars. Cached input is billed at the cached price when one is set."""
    return cost_at(
        usage,
        price.input_per_mtok,
        price.cached_input_per_mtok or price.input_per_mtok,
        price.output_per_mtok,
    )


def cost_at(usage: Usage, input_price: float, cached_price: float, output_price: float) -> float:
    """US dollars at these prices per million tokens (the one formula: ``cost_of`` and
    ``table.ModelFacts.cost``, which reads the prices once per table)."""
    cached = usage.cached if usage.cached < usage.input else usage.input  # min(), sans call
    return (
        (usage.input - cached) * input_price + cached * cached_price + usage.output * output_price
    ) / 1_000_000


class UsageSink(Protocol):
    """Receives one record per request. Must not block: called on the event loop."""

    def submit(self, record: usage_pb2.UsageRecord) -> None: ...


class InMemoryUsageSink:
    """Keeps the last records (tests, /config_dump); bounded so it cannot grow."""

    def __init__(self, limit: int = 10_000) -> None:
        self.records: collections.deque[usage_pb2.UsageRecord] = collections.deque(maxlen=limit)
        self._changed = asyncio.Event()

    def submit(self, record: usage_pb2.UsageRecord) -> None:
        self.records.append(record)
        self._changed.set()

    async def wait(self, count: int, within_s: float = 5.0) -> None:
        """Until at least ``count`` records arrived (tests wait on this, not on sleeps)."""
        async with asyncio.timeout(within_s):
            while len(self.records) < count:
                self._changed.clear()
                await self._changed.wait()


class LogUsageSink:
    """Standalone mode: one JSON line per record on stderr (no prompt text in it),
    batched through a ``LineBuffer`` (shared with the access log in a sidecar)."""

    def __init__(self, stream: Any = None) -> None:
        self.out = stream if isinstance(stream, LineBuffer) else LineBuffer(stream)

    def submit(self, record: usage_pb2.UsageRecord) -> None:
        # Field by field: json_format.MessageToDict costs ~10x more on the hot path.
        r = record
        line = {
            "msg": "usage",
            "request_id": r.request_id,
            "timestamp_ms": r.timestamp_ms,
            "team": r.team,
            "model": r.model,
            "provider": r.provider,
            "input_tokens": r.input_tokens,
            "cached_input_tokens": r.cached_input_tokens,
            "output_tokens": r.output_tokens,
            "reasoning_tokens": r.reasoning_tokens,
            "cost": r.cost,
            "streamed": r.streamed,
            "outcome": usage_pb2.Outcome.Name(r.outcome),
            "estimated": r.estimated,
            "fallbacks": r.fallbacks,
            "pii_counts": dict(r.pii_counts),
            "reason": r.reason,
            "latency_ms": r.latency_ms,
        }
        self.out.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))


class FanoutUsageSink:
    """Several sinks behind one (e.g. log and the operator reporter).

    An empty fan-out is false, so the pipeline can skip building records nobody takes.
    """

    def __init__(self, *sinks: UsageSink) -> None:
        self.sinks = list(sinks)

    def __len__(self) -> int:
        return len(self.sinks)

    def submit(self, record: usage_pb2.UsageRecord) -> None:
        for sink in self.sinks:
            try:
                sink.submit(record)
            except Exception:
                log.exception("usage sink failed")
