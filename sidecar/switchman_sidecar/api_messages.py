"""``POST /v1/messages``: the Anthropic Messages API in front of any provider.

The request is translated to the canonical (OpenAI chat) shape, runs the
same pipeline as chat, and the answer is translated back: a message, or the
Anthropic SSE event sequence built from canonical chunks. Anthropic-only
features with no canonical equivalent (prompt-cache markers, extended
thinking, citations) are dropped on the way in.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson

from switchman_sidecar.adapters.base import tool_call_arguments
from switchman_sidecar.api_chat import StreamEncoder
from switchman_sidecar.pipeline import ApiError, Exchange
from switchman_sidecar.usage import Usage

__all__ = ["AnthropicFrontend", "anthropic_to_openai_request", "validate_messages"]

_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def validate_messages(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "model: field required (a non-empty string)", param="model")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ApiError(400, "max_tokens: field required (a positive integer)", param="max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: must be a non-empty array", param="messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise ApiError(
                400, f"messages.{i}.role: must be 'user' or 'assistant'", param=f"messages.{i}"
            )
        if not isinstance(msg.get("content"), (str, list)):
            raise ApiError(
                400, f"messages.{i}.content: must be a string or an array", param=f"messages.{i}"
            )
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ApiError(400, "stream: must be a boolean", param="stream")
    return body


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def anthropic_to_openai_request(body: dict[str, Any]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text(system)})
    for msg in body["messages"]:
        content = msg.get("content")
        if isinstance(content, str):
            messages.append({"role": msg["role"], "content": content})
            continue
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": block.get("text", "")})
            elif kind == "image":
                src = block.get("source") or {}
                url = (
                    src.get("url")
                    or f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"
                )
                parts.append({"type": "image_url", "image_url": {"url": url}})
            elif kind == "tool_use":
                calls.append(
                    {
                        "id": block.get("id", ""),
                        "type": "function",
                        "function": {
                            "name": block.get("name", ""),
                            "arguments": json.dumps(block.get("input") or {}),
                        },
                    }
                )
            elif kind == "tool_result":
                result = block.get("content")
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id", ""),
                        "content": _text(result),
                    }
                )
        if msg["role"] == "assistant":
            out: dict[str, Any] = {"role": "assistant", "content": _text(parts) or None}
            if calls:
                out["tool_calls"] = calls
            messages.append(out)
        elif parts:
            messages.append({"role": "user", "content": parts})
    req: dict[str, Any] = {
        "model": body["model"],
        "messages": messages,
        "max_tokens": body["max_tokens"],
    }
    for key in ("temperature", "top_p", "stream"):
        if key in body:
            req[key] = body[key]
    if body.get("stop_sequences"):
        req["stop"] = body["stop_sequences"]
    tools = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict) or "name" not in tool:
            continue
        fn = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
        if tool.get("description"):
            fn["description"] = tool["description"]
        tools.append({"type": "function", "function": fn})
    if tools:
        req["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            req["tool_choice"] = {"type": "function", "function": {"name": choice.get("name", "")}}
        elif kind in ("auto", "none"):
            req["tool_choice"] = kind
        elif kind == "any":
            req["tool_choice"] = "required"
    return req


def _usage(usage: Usage | None) -> dict[str, int]:
    u = usage or Usage()
    return {
        "input_tokens": u.input - u.cached,
        "cache_read_input_tokens": u.cached,
        "cache_creation_input_tokens": 0,
        "output_tokens": u.output,
    }


def _message_id(raw: str) -> str:
    rid = raw.removeprefix("chatcmpl-")
    return rid if rid.startswith("msg_") else "msg_" + rid


class _AnthropicStream:
    """Canonical chunks → message_start, content_block_*, message_delta, message_stop."""

    def __init__(self) -> None:
        self._started = False
        self._block = -1
        self._block_kind = ""
        self._tools: dict[int, int] = {}
        self._stop = "end_turn"

    def _ev(self, kind: str, data: dict[str, Any]) -> bytes:
        return (
            b"event: "
            + kind.encode()
            + b"\ndata: "
            + orjson.dumps({"type": kind, **data})
            + b"\n\n"
        )

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._block += 1
        self._block_kind = kind
        return out + self._ev("content_block_start", {"index": self._block, "content_block": block})

    def _close(self) -> bytes:
        if not self._block_kind:
            return b""
        self._block_kind = ""
        return self._ev("content_block_stop", {"index": self._block})

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        out = []
        if not self._started:
            self._started = True
            message = {
                "id": _message_id(str(chunk.get("id", ""))),
                "type": "message",
                "role": "assistant",
                "model": chunk.get("model", ""),
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _usage(None),
            }
            out.append(self._ev("message_start", {"message": message}))
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # the Messages API has one answer per request
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._block_kind != "text":
                    out.append(self._open("text", {"type": "text", "text": ""}))
                out.append(
                    self._ev(
                        "content_block_delta",
                        {"index": self._block, "delta": {"type": "text_delta", "text": text}},
                    )
                )
            for call in delta.get("tool_calls") or []:
                index = int(call.get("index", 0))
                fn = call.get("function") or {}
                if index not in self._tools:
                    block = {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": fn.get("name", ""),
                        "input": {},
                    }
                    out.append(self._open("tool_use", block))
                    self._tools[index] = self._block
                if fn.get("arguments"):
                    delta_ev = {"type": "input_json_delta", "partial_json": fn["arguments"]}
                    out.append(
                        self._ev(
                            "content_block_delta", {"index": self._tools[index], "delta": delta_ev}
                        )
                    )
            if choice.get("finish_reason"):
                self._stop = _STOP.get(choice["finish_reason"], "end_turn")
        return b"".join(out)

    def finish(self, template: dict[str, Any], usage: Usage) -> bytes:
        delta = {
            "delta": {"stop_reason": self._stop, "stop_sequence": None},
            "usage": _usage(usage),
        }
        return self._close() + self._ev("message_delta", delta) + self._ev("message_stop", {})

    def error(self, err: ApiError) -> bytes:
        kind = _ERROR_TYPES.get(err.status, "api_error")
        return self._ev("error", {"error": {"type": kind, "message": err.message}})


class AnthropicFrontend:
    content_type = "application/json"
    content_type_line = b"content-type: application/json\r\n"

    def result(self, result: dict[str, Any], ex: Exchange) -> bytes:
        choice = (result.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        content: list[dict[str, Any]] = []
        if message.get("content"):
            content.append({"type": "text", "text": message["content"]})
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            args = tool_call_arguments(fn)
            content.append(
                {
                    "type": "tool_use",
                    "id": call.get("id", ""),
                    "name": fn.get("name", ""),
                    "input": args,
                }
            )
        return orjson.dumps(
            {
                "id": _message_id(str(result.get("id", f"{time.time_ns()}"))),
                "type": "message",
                "role": "assistant",
                "model": result.get("model", ""),
                "content": content,
                "stop_reason": _STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
                "stop_sequence": None,
                "usage": _usage(ex.usage),
            }
        )

    def error(self, err: ApiError) -> bytes:
        kind = _ERROR_TYPES.get(err.status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": err.message}})

    def stream(self, client_usage: bool) -> StreamEncoder:
        return _AnthropicStream()
