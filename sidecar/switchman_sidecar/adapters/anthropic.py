"""Anthropic Messages as a provider: canonical (OpenAI) request → Messages
request; message or SSE event stream → OpenAI completion or chunks.

Anthropic has no JSON mode: ``response_format`` becomes a system instruction
(with the schema when one is given). Unknown OpenAI fields are dropped.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.adapters.base import (
    UpstreamCall,
    UpstreamStreamError,
    finish_chunk,
    text_chunk,
    tool_call_arguments,
)
from switchman_sidecar.adapters.sse import SseParser
from switchman_sidecar.http.client import Origin
from switchman_sidecar.usage import Usage, usage_from_anthropic

__all__ = ["AnthropicAdapter", "openai_to_anthropic_request", "parse_data_url"]

ANTHROPIC_VERSION = "2023-06-01"
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` → ("image/png", "AAAA")."""
    if not url.startswith("data:"):
        return None
    head, _, data = url[5:].partition(",")
    media = head.split(";", 1)[0] or "application/octet-stream"
    return media, data


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            data = parse_data_url(url)
            if data:
                source = {"type": "base64", "media_type": data[0], "data": data[1]}
            else:
                source = {"type": "url", "url": url}
            blocks.append({"type": "image", "source": source})
    return blocks


def _json_instruction(fmt: Any) -> str:
    if not isinstance(fmt, dict):
        return ""
    if fmt.get("type") == "json_object":
        return "Respond with a single JSON object and nothing else."
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema", {})
        return "Respond with a single JSON object matching this JSON schema and nothing else: " + (
            json.dumps(schema)
        )
    return ""


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    return None


def openai_to_anthropic_request(
    body: dict[str, Any], upstream: str, max_out: int
) -> dict[str, Any]:
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for msg in body.get("messages") or []:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(_text(msg.get("content")))
        elif role == "user":
            add("user", _blocks(msg.get("content")))
        elif role == "assistant":
            blocks = _blocks(msg.get("content"))
            for call in msg.get("tool_calls") or []:
                fn = call.get("function") or {}
                args = tool_call_arguments(fn)
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": fn.get("name", ""),
                        "input": args,
                    }
                )
            add("assistant", blocks)
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": msg.get("tool_call_id", ""),
                "content": _text(msg.get("content")),
            }
            add("user", [result])
    instruction = _json_instruction(body.get("response_format"))
    if instruction:
        system.append(instruction)
    out: dict[str, Any] = {"model": upstream, "messages": messages, "max_tokens": max_out}
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    for src, dst in (("temperature", "temperature"), ("top_p", "top_p")):
        if body.get(src) is not None:
            out[dst] = body[src]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = []
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        entry = {
            "name": fn.get("name", ""),
            "input_schema": fn.get("parameters") or {"type": "object"},
        }
        if fn.get("description"):
            entry["description"] = fn["description"]
        tools.append(entry)
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"))
        if choice:
            out["tool_choice"] = choice
    if body.get("stream"):
        out["stream"] = True
    return out


def anthropic_error_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
        return str(data["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return raw[:200].decode("utf-8", "replace")


class AnthropicStreamDecoder:
    """message_start / content_block_* / message_delta → OpenAI chunks."""

    def __init__(self, model: str) -> None:
        self._sse = SseParser()
        self._model = model
        self._id = "chatcmpl-anthropic"
        self._created = int(time.time())
        self._tools: dict[int, int] = {}
        self._input: dict[str, Any] = {}
        self.usage: Usage | None = None
        self.finished = False

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event, payload in self._sse.feed(data):
            try:
                ev = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            kind = ev.get("type", event) if isinstance(ev, dict) else event
            if kind == "message_start":
                msg = ev.get("message") or {}
                self._id = "chatcmpl-" + str(msg.get("id", "anthropic"))
                self._input = msg.get("usage") or {}
                self.usage = usage_from_anthropic(self._input)
                out.append(self._chunk({"role": "assistant", "content": ""}))
            elif kind == "content_block_start":
                block = ev.get("content_block") or {}
                if block.get("type") == "tool_use":
                    index = len(self._tools)
                    self._tools[int(ev.get("index", 0))] = index
                    call = {
                        "index": index,
                        "id": block.get("id", ""),
                        "type": "function",
                        "function": {"name": block.get("name", ""), "arguments": ""},
                    }
                    out.append(self._chunk({"tool_calls": [call]}))
            elif kind == "content_block_delta":
                delta = ev.get("delta") or {}
                if delta.get("type") == "text_delta":
                    out.append(self._chunk({"content": delta.get("text", "")}))
                elif delta.get("type") == "input_json_delta":
                    index = self._tools.get(int(ev.get("index", 0)), 0)
                    args = {
                        "index": index,
                        "function": {"arguments": delta.get("partial_json", "")},
                    }
                    out.append(self._chunk({"tool_calls": [args]}))
            elif kind == "message_delta":
                usage = {**self._input, **(ev.get("usage") or {})}
                self.usage = usage_from_anthropic(usage)
                reason = STOP_REASONS.get((ev.get("delta") or {}).get("stop_reason") or "", "stop")
                out.append(finish_chunk(self._id, self._model, self._created, reason))
            elif kind == "message_stop":
                self.finished = True
            elif kind == "error":
                raise UpstreamStreamError(anthropic_error_message(payload.encode()))
        return out

    def _chunk(self, delta: dict[str, Any]) -> dict[str, Any]:
        return text_chunk(self._id, self._model, self._created, delta)


class AnthropicAdapter:
    provider = "anthropic"
    supports = frozenset({"chat"})
    native_chat = False

    def chat_call(
        self,
        model: routes_pb2.Model,
        origin: Origin,
        body: dict[str, Any],
        stream: bool,
        raw: bytes | None = None,
    ) -> UpstreamCall:
        max_out = body.get("max_completion_tokens") or body.get("max_tokens")
        max_out = int(max_out or model.max_output_tokens or 4096)
        req = openai_to_anthropic_request(body, model.upstream_model or model.name, max_out)
        if stream:
            req["stream"] = True
        headers = [
            ("content-type", "application/json"),
            ("accept-encoding", "identity"),
            ("anthropic-version", ANTHROPIC_VERSION),
        ]
        if model.credential.api_key:
            headers.append(("x-api-key", model.credential.api_key))
        return UpstreamCall(origin.base_path + "/v1/messages", headers, orjson.dumps(req))

    def chat_result(
        self, raw: bytes, model: routes_pb2.Model
    ) -> tuple[dict[str, Any], Usage | None]:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or data.get("type") != "message":
            raise ValueError("upstream answer is not an Anthropic message")
        text = []
        calls = []
        for block in data.get("content") or []:
            if block.get("type") == "text":
                text.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                calls.append(
                    {
                        "id": block.get("id", ""),
                        "type": "function",
                        "function": {
                            "name": block.get("name", ""),
                            "arguments": orjson.dumps(block.get("input") or {}).decode(),
                        },
                    }
                )
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
        if calls:
            message["tool_calls"] = calls
        usage = usage_from_anthropic(data.get("usage"))
        result = {
            "id": "chatcmpl-" + str(data.get("id", "")),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": data.get("model", model.upstream_model),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": STOP_REASONS.get(data.get("stop_reason") or "", "stop"),
                }
            ],
            "usage": _openai_usage(usage),
        }
        return result, usage

    def chat_stream(self, model: routes_pb2.Model) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(model.upstream_model or model.name)

    def passthrough_call(
        self, api: str, model: routes_pb2.Model, origin: Origin, body: dict[str, Any]
    ) -> UpstreamCall:
        raise ValueError(f"Anthropic does not serve the {api} API")

    def error_message(self, raw: bytes) -> str:
        return anthropic_error_message(raw)


def _openai_usage(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cached},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
    }
