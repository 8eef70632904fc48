"""Google Gemini (generateContent / streamGenerateContent?alt=sse) as a provider.

Tool results need the function's name, which OpenAI only gives by call id:
the adapter maps ids to names from the earlier assistant turns.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.adapters.anthropic import _openai_usage, parse_data_url
from switchman_sidecar.adapters.base import (
    UpstreamCall,
    UpstreamStreamError,
    finish_chunk,
    text_chunk,
    tool_call_arguments,
)
from switchman_sidecar.adapters.sse import SseParser
from switchman_sidecar.http.client import Origin
from switchman_sidecar.usage import Usage, usage_from_gemini

__all__ = ["GeminiAdapter", "openai_to_gemini_request"]

FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            parts.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            data = parse_data_url(url)
            if data:
                parts.append({"inlineData": {"mimeType": data[0], "data": data[1]}})
            else:
                parts.append({"fileData": {"fileUri": url, "mimeType": "image/*"}})
    return parts


def openai_to_gemini_request(body: dict[str, Any], max_out: int | None) -> dict[str, Any]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for msg in body.get("messages") or []:
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(msg.get("content")))
        elif role == "user":
            add("user", _parts(msg.get("content")))
        elif role == "assistant":
            parts = _parts(msg.get("content"))
            for call in msg.get("tool_calls") or []:
                fn = call.get("function") or {}
                names[call.get("id", "")] = fn.get("name", "")
                args = tool_call_arguments(fn)
                parts.append({"functionCall": {"name": fn.get("name", ""), "args": args}})
            add("model", parts)
        elif role == "tool":
            name = names.get(msg.get("tool_call_id", ""), "tool")
            content = msg.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            add("user", [{"functionResponse": {"name": name, "response": {"content": text}}}])
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"), ("n", "candidateCount")):
        if body.get(src) is not None:
            config[dst] = body[src]
    if max_out:
        config["maxOutputTokens"] = max_out
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    if config:
        out["generationConfig"] = config
    decls = []
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        decl = {"name": fn.get("name", ""), "description": fn.get("description", "")}
        if fn.get("parameters"):
            decl["parameters"] = fn["parameters"]
        decls.append(decl)
    if decls:
        out["tools"] = [{"functionDeclarations": decls}]
        choice = body.get("tool_choice")
        mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(
            choice if isinstance(choice, str) else ""
        )
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name", "")
            out["toolConfig"] = {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}
            }
        elif mode:
            out["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    return out


def _gemini_error(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
        if isinstance(data, list):
            data = data[0]
        return str(data["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
        return raw[:200].decode("utf-8", "replace")


def _split(candidate: dict[str, Any], call_base: int) -> tuple[str, list[dict[str, Any]]]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "text" in part and not part.get("thought"):
            text.append(part["text"])
        elif "functionCall" in part:
            fc = part["functionCall"]
            calls.append(
                {
                    "index": call_base + len(calls),
                    "id": f"call_{call_base + len(calls)}",
                    "type": "function",
                    "function": {
                        "name": fc.get("name", ""),
                        "arguments": orjson.dumps(fc.get("args") or {}).decode(),
                    },
                }
            )
    return "".join(text), calls


class GeminiStreamDecoder:
    def __init__(self, model: str) -> None:
        self._sse = SseParser()
        self._model = model
        self._id = f"chatcmpl-gemini-{time.time_ns()}"
        self._created = int(time.time())
        self._started = False
        self._calls = 0
        self.usage: Usage | None = None
        self.finished = False

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _event, payload in self._sse.feed(data):
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            if "error" in obj:
                raise UpstreamStreamError(_gemini_error(payload.encode()))
            if not self._started:
                self._started = True
                out.append(self._chunk({"role": "assistant", "content": ""}))
            if obj.get("usageMetadata"):
                self.usage = usage_from_gemini(obj["usageMetadata"])
            for cand in obj.get("candidates") or []:
                text, calls = _split(cand, self._calls)
                if text:
                    out.append(self._chunk({"content": text}))
                if calls:
                    self._calls += len(calls)
                    out.append(self._chunk({"tool_calls": calls}))
                if cand.get("finishReason"):
                    reason = (
                        "tool_calls" if self._calls else FINISH.get(cand["finishReason"], "stop")
                    )
                    out.append(finish_chunk(self._id, self._model, self._created, reason))
                    self.finished = True
        return out

    def _chunk(self, delta: dict[str, Any]) -> dict[str, Any]:
        return text_chunk(self._id, self._model, self._created, delta)


class GeminiAdapter:
    provider = "gemini"
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
        req = openai_to_gemini_request(body, int(max_out) if max_out else None)
        name = model.upstream_model or model.name
        action = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        headers = [("content-type", "application/json"), ("accept-encoding", "identity")]
        if model.credential.api_key:
            headers.append(("x-goog-api-key", model.credential.api_key))
        return UpstreamCall(f"{origin.base_path}/models/{name}{action}", headers, orjson.dumps(req))

    def chat_result(
        self, raw: bytes, model: routes_pb2.Model
    ) -> tuple[dict[str, Any], Usage | None]:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or "candidates" not in data:
            raise ValueError("upstream answer is not a Gemini response")
        choices = []
        for i, cand in enumerate(data.get("candidates") or []):
            text, calls = _split(cand, 0)
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = [
                    {k: v for k, v in c.items() if k != "index"} for c in calls
                ]
            reason = "tool_calls" if calls else FINISH.get(cand.get("finishReason", "STOP"), "stop")
            choices.append(
                {"index": i, "message": message, "logprobs": None, "finish_reason": reason}
            )
        usage = usage_from_gemini(data.get("usageMetadata"))
        result = {
            "id": f"chatcmpl-gemini-{time.time_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": data.get("modelVersion", model.upstream_model),
            "choices": choices,
            "usage": _openai_usage(usage),
        }
        return result, usage

    def chat_stream(self, model: routes_pb2.Model) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(model.upstream_model or model.name)

    def passthrough_call(
        self, api: str, model: routes_pb2.Model, origin: Origin, body: dict[str, Any]
    ) -> UpstreamCall:
        raise ValueError(f"Gemini is not reachable through the {api} API")

    def error_message(self, raw: bytes) -> str:
        return _gemini_error(raw)
