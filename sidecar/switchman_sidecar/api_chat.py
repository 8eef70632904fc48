"""Chat: the canonical request path, used by ``/v1/chat/completions`` directly
and by ``/v1/messages`` through a ``Frontend`` that re-shapes the output.

Streams: nothing is sent to the client until the first upstream chunk is in
hand (so failover is invisible); after that an upstream failure ends the
stream with the API's error event. Usage is taken from the provider (asked
for even when the client did not ask, and then not shown), estimated from
the streamed characters when the provider reported none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from switchman_protocol.v1 import routes_pb2, usage_pb2
from switchman_sidecar.adapters import Adapter, StreamDecoder, UpstreamStreamError
from switchman_sidecar.adapters.openai import OpenAIPassthroughDecoder, stream_chars
from switchman_sidecar.cascade import run_cascade
from switchman_sidecar.ensemble import run_ensemble
from switchman_sidecar.http.client import UpstreamError
from switchman_sidecar.http.server import Request, ResponseWriter
from switchman_sidecar.pii import Restorer
from switchman_sidecar.pipeline import ApiError, Exchange, Pipeline, StreamAttempt
from switchman_sidecar.restore import ChunkRestorer, restore_completion
from switchman_sidecar.usage import Usage, estimate_tokens

__all__ = [
    "Frontend",
    "OpenAIFrontend",
    "StreamEncoder",
    "openai_error",
    "relay",
    "serve_chat",
    "validate_chat",
]

_SSE_LINES = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"


class Frontend(Protocol):
    """How one client API shapes answers, stream events and errors."""

    content_type: str
    content_type_line: bytes

    def result(self, result: dict[str, Any], ex: Exchange) -> bytes: ...

    def error(self, err: ApiError) -> bytes: ...

    def stream(self, client_usage: bool) -> StreamEncoder: ...


class StreamEncoder(Protocol):
    def chunk(self, chunk: dict[str, Any]) -> bytes: ...

    def finish(self, template: dict[str, Any], usage: Usage) -> bytes: ...

    def error(self, err: ApiError) -> bytes: ...


def openai_error(err: ApiError) -> bytes:
    return orjson.dumps(
        {"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.code}}
    )


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cached},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
    }


class _OpenAIStream:
    __slots__ = ("client_usage", "saw_usage")

    def __init__(self, client_usage: bool) -> None:
        self.client_usage = client_usage
        self.saw_usage = False

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        if "usage" in chunk:
            if chunk["usage"]:
                self.saw_usage = True
            if not self.client_usage:
                if not chunk.get("choices"):
                    return b""  # the usage chunk we asked for on the client's behalf
                del chunk["usage"]
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def finish(self, template: dict[str, Any], usage: Usage) -> bytes:
        if self.client_usage and not self.saw_usage:
            # A provider without OpenAI's usage chunk: synthesise the one the client asked for.
            tail = {
                **template,
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": openai_usage(usage),
            }
            return b"data: " + orjson.dumps(tail) + b"\n\ndata: [DONE]\n\n"
        return b"data: [DONE]\n\n"

    def error(self, err: ApiError) -> bytes:
        return b"data: " + openai_error(err) + b"\n\n"


class OpenAIFrontend:
    content_type = "application/json"
    content_type_line = b"content-type: application/json\r\n"
    raw_openai = True
    """Answers in OpenAI's shape: an OpenAI-family provider's body can go out as is."""

    def result(self, result: dict[str, Any], ex: Exchange) -> bytes:
        return orjson.dumps(result)

    def error(self, err: ApiError) -> bytes:
        return openai_error(err)

    def stream(self, client_usage: bool) -> StreamEncoder:
        return _OpenAIStream(client_usage)


_CHECKED = frozenset(
    ("stream", "max_tokens", "max_completion_tokens", "n", "temperature", "tools", "stream_options")
)


def validate_chat(body: Any) -> dict[str, Any]:
    """The checks a provider would make, done before any money is spent."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "`model` must be a non-empty string", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "`messages` must be a non-empty array", param="messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise ApiError(
                400, f"`messages[{i}]` must be an object with a `role`", param=f"messages[{i}]"
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ApiError(
                400,
                f"`messages[{i}].content` must be a string or an array",
                param=f"messages[{i}].content",
            )
    if _CHECKED.isdisjoint(body):
        return body  # none of the optional fields checked below
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ApiError(400, "`stream` must be a boolean", param="stream")
    for key in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ApiError(400, f"`{key}` must be a positive integer", param=key)
    temp = body.get("temperature")
    if temp is not None and (not isinstance(temp, (int, float)) or isinstance(temp, bool)):
        raise ApiError(400, "`temperature` must be a number", param="temperature")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ApiError(400, "`tools` must be an array", param="tools")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise ApiError(400, "`stream_options` must be an object", param="stream_options")
    return body


def _result_chars(result: dict[str, Any]) -> int:
    n = 0
    for choice in result.get("choices") or []:
        message = choice.get("message") or {}
        n += len(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            n += len((call.get("function") or {}).get("arguments") or "")
    return n


async def serve_chat(
    p: Pipeline, req: Request, w: ResponseWriter, ex: Exchange, body: dict[str, Any], fe: Frontend
) -> None:
    stream = body.get("stream") is True
    opts = body.get("stream_options")
    client_usage = stream and isinstance(opts, dict) and bool(opts.get("include_usage"))
    send_body, candidates = p.prepare(ex, body, req.headers, len(req.body))
    # The client's bytes can go upstream unchanged when the body was not rewritten
    # (no PII policy ran, no output cap) and it already is the OpenAI shape.
    unchanged = ex.api == "chat" and send_body is body and ex.redaction is None
    client_bytes = req.body if unchanged else None
    ensemble = ex.decision.ensemble_plan if ex.decision is not None else None
    if stream and ensemble is not None:
        # A high-stakes request the client streams: the members answer whole, the
        # aggregate's pick is then sent as a stream (nothing can be streamed before
        # the vote or the judge has decided).
        send_body = _whole(send_body)
        client_bytes = None
    if not stream or ensemble is not None:
        plan = ex.decision.cascade_plan if ex.decision is not None and not stream else None
        if ensemble is not None:  # routing (#6): fan out, aggregate
            model, adapter, raw = await run_ensemble(
                p, ex, candidates, send_body, req.headers, ensemble
            )
        elif plan is not None:  # routing (#6): try cheap, check, escalate
            model, adapter, raw = await run_cascade(p, ex, candidates, send_body, req.headers, plan)
        else:
            model, adapter, raw = await p.unary(
                ex,
                candidates,
                lambda a, m, o: a.chat_call(m, o, send_body, False, client_bytes),
                req.headers,
            )
        try:
            result, usage = adapter.chat_result(raw, model)
        except (ValueError, TypeError, KeyError) as exc:
            ex.usage = Usage(input=ex.input_estimate, estimated=True)
            ex.outcome = usage_pb2.OUTCOME_UPSTREAM_ERROR
            raise ApiError(
                502, f"{model.name}: unreadable answer ({exc})", "server_error", "upstream_error"
            ) from exc
        ex.usage = usage or Usage(
            input=ex.input_estimate, output=estimate_tokens(_result_chars(result)), estimated=True
        )
        restored = ex.redaction is not None and bool(ex.redaction.counts)
        if restored:
            assert ex.redaction is not None
            restore_completion(result, ex.redaction.restorer)
        ex.outcome = usage_pb2.OUTCOME_SUCCESS
        if stream:
            ex.streamed = True
            await _send_as_stream(w, ex, result, fe.stream(client_usage))
        else:
            # An OpenAI-shaped answer to an OpenAI client, unchanged: send the provider's
            # bytes as they came instead of re-encoding the parsed dict.
            same = not restored and getattr(fe, "raw_openai", False) and adapter.native_chat
            w.send(
                200,
                [],
                raw if same else fe.result(result, ex),
                fe.content_type_line + ex.decision_lines() + p.cost_line(ex),
            )
        if p.on_answer is not None and ex.decision is not None and ex.decision.shadow_model:
            p.on_answer(ex, send_body, result, req.headers)  # routing (#6): shadow sample
        return
    ex.streamed = True
    # A shadow sample compares the answer's text: read the events as dicts and keep it.
    shadow = p.on_answer is not None and ex.decision is not None and bool(ex.decision.shadow_model)
    decoder: Callable[[Adapter, routes_pb2.Model], StreamDecoder | OpenAIPassthroughDecoder]
    if shadow:
        decoder = _chat_stream
    elif getattr(fe, "raw_openai", False) and not (ex.redaction and ex.redaction.counts):
        # OpenAI client, nothing to restore: an OpenAI-family provider's events go
        # out as they came (each still read for usage, errors and characters).
        decoder = _passthrough_showing_usage if client_usage else _passthrough_hiding_usage
    else:
        decoder = _chat_stream
    attempt = await p.open_stream(
        ex,
        candidates,
        lambda a, m, o: a.chat_call(m, o, send_body, True, client_bytes),
        decoder,
        req.headers,
    )
    text: list[str] | None = [] if shadow else None
    await relay(p, w, ex, attempt, fe.stream(client_usage), text=text)
    if text is not None and ex.outcome == usage_pb2.OUTCOME_SUCCESS and p.on_answer is not None:
        # routing (#6): the shadow gets the same request, whole (its answer is only compared)
        answer = {"choices": [{"message": {"role": "assistant", "content": "".join(text)}}]}
        p.on_answer(ex, _whole(send_body), answer, req.headers)


def _whole(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` asking for a whole answer: without ``stream`` and ``stream_options``."""
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}


def result_chunks(result: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A whole chat completion as the chunks a stream of it would have had: per
    choice one delta with the role, content and tool calls, then its finish."""
    template = {
        "id": result.get("id", ""),
        "object": "chat.completion.chunk",
        "created": result.get("created", 0),
        "model": result.get("model", ""),
    }
    chunks = []
    for choice in result.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
        finish = choice.get("finish_reason") or "stop"
        chunks.append(
            {**template, "choices": [{"index": index, "delta": delta, "finish_reason": None}]}
        )
        chunks.append(
            {**template, "choices": [{"index": index, "delta": {}, "finish_reason": finish}]}
        )
    return template, chunks


async def _send_as_stream(
    w: ResponseWriter, ex: Exchange, result: dict[str, Any], enc: StreamEncoder
) -> None:
    template, chunks = result_chunks(result)
    assert ex.usage is not None
    w.start(200, [], _SSE_LINES + ex.decision_lines())
    out = [enc.chunk(chunk) for chunk in chunks]
    out.append(enc.finish(template, ex.usage))
    await w.write(b"".join(out))
    w.end()


def _chat_stream(a: Adapter, m: routes_pb2.Model) -> StreamDecoder:
    return a.chat_stream(m)


def _passthrough_hiding_usage(
    a: Adapter, m: routes_pb2.Model
) -> StreamDecoder | OpenAIPassthroughDecoder:
    return OpenAIPassthroughDecoder(hide_usage=True) if a.native_chat else a.chat_stream(m)


def _passthrough_showing_usage(
    a: Adapter, m: routes_pb2.Model
) -> StreamDecoder | OpenAIPassthroughDecoder:
    return OpenAIPassthroughDecoder(hide_usage=False) if a.native_chat else a.chat_stream(m)


class EventRestorer(Protocol):
    """Puts redacted values back into a stream's events (restore.py)."""

    def process(self, chunk: dict[str, Any]) -> list[dict[str, Any]] | None: ...

    def flush_all(self, template: dict[str, Any]) -> list[dict[str, Any]]: ...


async def relay(
    p: Pipeline,
    w: ResponseWriter,
    ex: Exchange,
    att: StreamAttempt,
    enc: StreamEncoder,
    restorer_for: Callable[[Restorer], EventRestorer] = ChunkRestorer,
    text: list[str] | None = None,
) -> None:
    """Sends a stream's events to the client as they arrive. ``text``, when
    given, collects the first choice's content as the client saw it."""
    assert ex.table is not None
    idle = ex.table.policy.per_try_timeout_s
    dec = att.decoder
    # The provider's event bytes, already framed for the client (serve_chat chose it).
    raw = dec if isinstance(dec, OpenAIPassthroughDecoder) else None
    restorer = restorer_for(ex.redaction.restorer) if ex.redaction and ex.redaction.counts else None
    w.start(200, [], _SSE_LINES + ex.decision_lines())
    w.on_disconnect(att.response.close)
    att.response.idle_s = idle  # the upstream client times out idle gaps (no per-chunk timer)
    template: dict[str, Any] = {}
    pending: list[Any] = att.first
    failure: ApiError | None = None
    try:
        while True:
            if raw is not None:
                if pending:
                    await w.write(b"".join(pending))
            else:
                out: list[bytes] = []
                for chunk in pending:
                    if not template:
                        template = {
                            k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk
                        }
                    if restorer is not None:
                        before = restorer.process(chunk)
                        if before:
                            out.extend(enc.chunk(ev) for ev in before)
                    ex.out_chars += stream_chars(chunk)
                    if text is not None:
                        _collect(chunk, text)
                    out.append(enc.chunk(chunk))
                if out:
                    await w.write(b"".join(out))
            if w.disconnected:
                break
            data = await anext(att.chunks, None)
            if data is None:
                break
            pending = dec.feed(data)
    except TimeoutError:
        failure = ApiError(504, f"{att.model.name}: the stream stalled", "server_error", "timeout")
    except UpstreamStreamError as exc:
        failure = ApiError(502, f"{att.model.name}: {exc}", "server_error", "upstream_error")
    except UpstreamError as broke:  # not ``exc``: compiled, a name keeps its first type
        if not w.disconnected:
            failure = ApiError(
                502, f"{att.model.name}: stream broke: {broke}", "server_error", "upstream_error"
            )
    finally:
        att.response.close()
    if raw is not None:
        ex.out_chars += raw.chars
        template = raw.template
        if raw.saw_usage and isinstance(enc, _OpenAIStream):
            enc.saw_usage = True
    complete = dec.finished and failure is None and not w.disconnected
    ex.usage = _stream_usage(ex, att, complete)
    if w.disconnected:
        ex.outcome = usage_pb2.OUTCOME_CLIENT_ABORTED
        return
    tail: list[bytes] = []
    if restorer is not None:
        for rest in restorer.flush_all(template):
            if text is not None:
                _collect(rest, text)
            tail.append(enc.chunk(rest))
    if failure is not None:
        p.metrics.upstream_failures.labels(att.model.name, "mid-stream").inc()
        ex.outcome = usage_pb2.OUTCOME_UPSTREAM_ERROR
        tail.append(enc.error(failure))
    else:
        ex.outcome = usage_pb2.OUTCOME_SUCCESS
        tail.append(enc.finish(template, ex.usage))
    await w.write(b"".join(tail))
    w.end()


def _collect(chunk: dict[str, Any], text: list[str]) -> None:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta")
        if choice.get("index", 0) == 0 and isinstance(delta, dict):
            content = delta.get("content")
            if isinstance(content, str):
                text.append(content)


def _stream_usage(ex: Exchange, att: StreamAttempt, complete: bool) -> Usage:
    reported = att.decoder.usage
    out_estimate = estimate_tokens(ex.out_chars)
    if reported is None or (reported.input == 0 and reported.output == 0):
        return Usage(input=ex.input_estimate, output=out_estimate, estimated=True)
    if not complete and reported.output < out_estimate:
        return Usage(
            reported.input, reported.cached, out_estimate, reported.reasoning, estimated=True
        )
    return reported
