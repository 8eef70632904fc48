"""The adapter contract and helpers shared by the providers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.http.client import Origin
from switchman_sidecar.usage import Usage

__all__ = [
    "Adapter",
    "StreamDecoder",
    "UpstreamCall",
    "UpstreamStreamError",
    "context_exceeded",
    "finish_chunk",
    "text_chunk",
    "tool_call_arguments",
]


class UpstreamStreamError(Exception):
    """The provider reported an error inside a stream that had started."""


@dataclass(slots=True)
class UpstreamCall:
    target: str
    """Path and query on the model's origin."""
    headers: list[tuple[str, str]]
    body: bytes


class StreamDecoder(Protocol):
    """Turns a provider's stream into OpenAI ``chat.completion.chunk`` dicts."""

    usage: Usage | None
    finished: bool

    def feed(self, data: bytes) -> list[dict[str, Any]]: ...


class Adapter(Protocol):
    provider: str
    native_chat: bool
    """Its chat answers already are the canonical (OpenAI) shape, returned unchanged."""
    supports: frozenset[str]
    """APIs this provider serves natively: chat, embeddings, responses."""

    def chat_call(
        self,
        model: routes_pb2.Model,
        origin: Origin,
        body: dict[str, Any],
        stream: bool,
        raw: bytes | None = None,
    ) -> UpstreamCall: ...

    def chat_result(
        self, raw: bytes, model: routes_pb2.Model
    ) -> tuple[dict[str, Any], Usage | None]: ...

    def chat_stream(self, model: routes_pb2.Model) -> StreamDecoder: ...

    def passthrough_call(
        self, api: str, model: routes_pb2.Model, origin: Origin, body: dict[str, Any]
    ) -> UpstreamCall: ...

    def error_message(self, raw: bytes) -> str: ...


_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "prompt is too long",
    "input is too long",
    "exceeds the maximum number of tokens",
)


def context_exceeded(raw: bytes) -> bool:
    """A 400 that means "prompt too long for this model": try a larger one."""
    text = raw[:4096].decode("utf-8", "replace").lower()
    return any(marker in text for marker in _CONTEXT_MARKERS)


def text_chunk(cid: str, model: str, created: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
    }


def finish_chunk(cid: str, model: str, created: int, reason: str) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}],
    }


def tool_call_arguments(function: dict[str, Any]) -> Any:
    """An OpenAI tool call's ``arguments`` string as the JSON object that the
    Anthropic and Gemini shapes carry; text that is not JSON is kept, not lost,
    as ``{"_raw": text}``."""
    try:
        return json.loads(function.get("arguments") or "{}")
    except ValueError:
        return {"_raw": function.get("arguments")}
