"""``/v1/embeddings`` and ``/v1/responses``: passed through to the providers
that serve those APIs natively (OpenAI, Azure OpenAI, OpenAI-compatible),
with the same routing, failover, PII redaction, usage and headers as chat."""

from __future__ import annotations

from typing import Any

import orjson

from switchman_protocol.v1 import usage_pb2
from switchman_sidecar.adapters.base import UpstreamStreamError
from switchman_sidecar.adapters.openai import openai_error_message
from switchman_sidecar.adapters.sse import SseParser
from switchman_sidecar.api_chat import relay
from switchman_sidecar.http.server import Request, ResponseWriter
from switchman_sidecar.pipeline import ApiError, Exchange, Pipeline
from switchman_sidecar.restore import ResponsesRestorer, restore_responses_output
from switchman_sidecar.usage import Usage, estimate_tokens, usage_from_openai, usage_from_responses

__all__ = ["serve_embeddings", "serve_responses", "validate_embeddings", "validate_responses"]


def validate_embeddings(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "`model` must be a non-empty string", param="model")
    value = body.get("input")
    ok = isinstance(value, str) or (
        isinstance(value, list) and value and all(isinstance(x, (str, int, list)) for x in value)
    )
    if not ok:
        raise ApiError(400, "`input` must be a string or a non-empty array", param="input")
    return body


def validate_responses(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "`model` must be a non-empty string", param="model")
    if not isinstance(body.get("input"), (str, list)):
        raise ApiError(400, "`input` must be a string or an array", param="input")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ApiError(400, "`stream` must be a boolean", param="stream")
    return body


async def serve_embeddings(
    p: Pipeline, req: Request, w: ResponseWriter, ex: Exchange, body: dict[str, Any]
) -> None:
    send_body, candidates = p.prepare(ex, body, req.headers, len(req.body))
    _, _, raw = await p.unary(
        ex,
        candidates,
        lambda a, m, o: a.passthrough_call("embeddings", m, o, send_body),
        req.headers,
    )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        ex.outcome = usage_pb2.OUTCOME_UPSTREAM_ERROR
        raise ApiError(
            502, "unreadable embeddings answer", "server_error", "upstream_error"
        ) from exc
    usage = usage_from_openai(data.get("usage") if isinstance(data, dict) else None)
    ex.usage = usage if usage and usage.input else Usage(input=ex.input_estimate, estimated=True)
    ex.outcome = usage_pb2.OUTCOME_SUCCESS
    headers = [("content-type", "application/json"), *ex.decision_headers(), p.cost_header(ex)]
    w.send(200, headers, raw)


class ResponsesDecoder:
    """Responses API events, kept as dicts; usage from the terminal event."""

    def __init__(self) -> None:
        self._sse = SseParser()
        self.usage: Usage | None = None
        self.finished = False

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out = []
        for _event, payload in self._sse.feed(data):
            try:
                ev = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(ev, dict):
                continue
            kind = ev.get("type", "")
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                self.usage = usage_from_responses((ev.get("response") or {}).get("usage"))
                self.finished = True
            elif kind == "error":
                raise UpstreamStreamError(openai_error_message(payload.encode()))
            out.append(ev)
        return out


class _ResponsesStream:
    def chunk(self, chunk: dict[str, Any]) -> bytes:
        kind = str(chunk.get("type", "message"))
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(chunk) + b"\n\n"

    def finish(self, template: dict[str, Any], usage: Usage) -> bytes:
        return b""

    def error(self, err: ApiError) -> bytes:
        ev = {"type": "error", "code": err.code, "message": err.message, "param": err.param}
        return b"event: error\ndata: " + orjson.dumps(ev) + b"\n\n"


def _restore_output(data: dict[str, Any], ex: Exchange) -> None:
    if ex.redaction is None or not ex.redaction.counts:
        return
    restore_responses_output(data.get("output") or [], ex.redaction.restorer)


async def serve_responses(
    p: Pipeline, req: Request, w: ResponseWriter, ex: Exchange, body: dict[str, Any]
) -> None:
    send_body, candidates = p.prepare(ex, body, req.headers, len(req.body))
    if body.get("stream") is True:
        ex.streamed = True
        attempt = await p.open_stream(
            ex,
            candidates,
            lambda a, m, o: a.passthrough_call("responses", m, o, send_body),
            lambda a, m: ResponsesDecoder(),
            req.headers,
        )
        await relay(p, w, ex, attempt, _ResponsesStream(), ResponsesRestorer)
        return
    _, _, raw = await p.unary(
        ex,
        candidates,
        lambda a, m, o: a.passthrough_call("responses", m, o, send_body),
        req.headers,
    )
    try:
        data = orjson.loads(raw)
        assert isinstance(data, dict)
    except (orjson.JSONDecodeError, AssertionError) as exc:
        ex.outcome = usage_pb2.OUTCOME_UPSTREAM_ERROR
        raise ApiError(
            502, "unreadable responses answer", "server_error", "upstream_error"
        ) from exc
    ex.usage = usage_from_responses(data.get("usage")) or Usage(
        input=ex.input_estimate, output=estimate_tokens(len(raw)), estimated=True
    )
    _restore_output(data, ex)
    ex.outcome = usage_pb2.OUTCOME_SUCCESS
    headers = [("content-type", "application/json"), *ex.decision_headers(), p.cost_header(ex)]
    w.send(200, headers, orjson.dumps(data))
