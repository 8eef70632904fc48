"""Every text part of a request, per API shape, rewritten by one function.

The walker copies only the containers it changes (the caller's body is never
mutated) and knows where personal data can hide in each API: message text and
text parts, system prompts, tool results, and tool-call arguments, which are
JSON text (parsed, each string rewritten, re-serialised; left as plain text if
they do not parse). Tool *definitions* are the application's schema, not user
data, and are left alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["Rewrite", "walk_request"]

Rewrite = Callable[[str], str]


def _json_text(text: str, fn: Rewrite) -> str:
    """Tool-call arguments: rewrite the strings inside the JSON document."""
    try:
        doc = json.loads(text)
    except ValueError:
        return fn(text)
    new = _deep(doc, fn)
    if new is doc:
        return text
    return json.dumps(new, ensure_ascii=False, separators=(",", ":"))


def _deep(value: Any, fn: Rewrite) -> Any:
    """Any JSON value: every string (keys excluded) rewritten; same object if unchanged."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        items = [_deep(v, fn) for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        out = {k: _deep(v, fn) for k, v in value.items()}
        return out if any(out[k] is not value[k] for k in value) else value
    return value


def _parts(content: Any, fn: Rewrite) -> Any:
    """``content`` as a string or a list of typed parts (OpenAI and Anthropic)."""
    if isinstance(content, str):
        return fn(content)
    if not isinstance(content, list):
        return content
    out = []
    changed = False
    for part in content:
        new = _part(part, fn)
        changed |= new is not part
        out.append(new)
    return out if changed else content


def _part(part: Any, fn: Rewrite) -> Any:
    if isinstance(part, str):
        return fn(part)
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    updates: dict[str, Any] = {}
    if isinstance(part.get("text"), str):  # text, input_text, output_text
        updates["text"] = fn(part["text"])
    if kind == "tool_use" and "input" in part:  # Anthropic
        updates["input"] = _deep(part["input"], fn)
    if kind == "tool_result" and "content" in part:  # Anthropic
        updates["content"] = _parts(part["content"], fn)
    if kind == "function_call" and isinstance(part.get("arguments"), str):  # Responses
        updates["arguments"] = _json_text(part["arguments"], fn)
    if kind == "function_call_output" and "output" in part:  # Responses
        updates["output"] = _parts(part["output"], fn)
    if isinstance(part.get("content"), (str, list)) and kind in (None, "message"):
        updates["content"] = _parts(part["content"], fn)  # Responses message items
    if not updates or all(updates[k] is part[k] for k in updates):
        return part
    return {**part, **updates}


def _tool_call(call: Any, fn: Rewrite) -> Any:
    fn_obj = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn_obj, dict) or not isinstance(fn_obj.get("arguments"), str):
        return call
    args = _json_text(fn_obj["arguments"], fn)
    if args is fn_obj["arguments"]:
        return call
    return {**call, "function": {**fn_obj, "arguments": args}}


def _chat_message(msg: Any, fn: Rewrite) -> Any:
    if not isinstance(msg, dict):
        return msg
    new = dict(msg)
    changed = False
    if "content" in msg:
        new["content"] = _parts(msg["content"], fn)
        changed = new["content"] is not msg["content"]
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        new_calls = [_tool_call(c, fn) for c in calls]
        if any(a is not b for a, b in zip(new_calls, calls, strict=True)):
            new["tool_calls"] = new_calls
            changed = True
    return new if changed else msg


def _messages(messages: Any, fn: Rewrite) -> Any:
    if not isinstance(messages, list):
        return messages
    out = [_chat_message(m, fn) for m in messages]
    return out if any(a is not b for a, b in zip(out, messages, strict=True)) else messages


def walk_request(body: dict[str, Any], api: str, fn: Rewrite) -> dict[str, Any]:
    """``body`` with every text part passed through ``fn``.

    ``api``: ``chat`` (OpenAI chat completions, also the canonical shape the
    sidecar translates Anthropic requests into), ``messages`` (Anthropic, if
    redacted before translation), ``responses``, ``embeddings``; anything else
    is walked generically (every string under ``messages``/``input``/``prompt``).
    """
    out = dict(body)
    if api in ("chat", "messages"):
        out["messages"] = _messages(body.get("messages"), fn)
        if "system" in body:  # Anthropic: a string or text blocks
            out["system"] = _parts(body["system"], fn)
    elif api == "responses":
        if isinstance(body.get("instructions"), str):
            out["instructions"] = fn(body["instructions"])
        value = body.get("input")
        if isinstance(value, str):
            out["input"] = fn(value)
        elif isinstance(value, list):
            out["input"] = [_part(item, fn) for item in value]
    elif api == "embeddings":
        value = body.get("input")
        if isinstance(value, str):
            out["input"] = fn(value)
        elif isinstance(value, list):
            out["input"] = [fn(v) if isinstance(v, str) else v for v in value]
    else:
        for key in ("messages", "input", "prompt"):
            if key in body:
                out[key] = _deep(body[key], fn)
    return out
