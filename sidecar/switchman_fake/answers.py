"""What the fake answers, independent of the wire format: text pieces, a tool
call, token counts. Each API module renders this ``Answer`` in its own shape."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from switchman_fake.steering import Steering

__all__ = ["Answer", "build_answer", "last_user_text", "prompt_chars"]


@dataclass(slots=True)
class Answer:
    pieces: list[str]
    tool_name: str
    tool_args: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif part.get("type") == "tool_result":
                    out.append(_text_of(part.get("content")))
                elif isinstance(part.get("functionResponse"), dict):
                    response = part["functionResponse"].get("response") or {}
                    out.append(_text_of(response.get("content")))
        return " ".join(out)
    return ""


def last_user_text(messages: list[Any]) -> str:
    """The last user turn's text, for OpenAI, Anthropic and Gemini message lists."""
    for msg in reversed(messages):
        if not isinstance(msg, dict):
            continue
        if msg.get("role") == "user":
            if "parts" in msg:
                return _text_of(msg["parts"])
            return _text_of(msg.get("content"))
        if msg.get("role") == "tool":
            return _text_of(msg.get("content"))
        if msg.get("type") == "function_call_output":  # Responses API tool result
            return _text_of(msg.get("output"))
    return ""


def prompt_chars(body: Any) -> int:
    return len(json.dumps(body, ensure_ascii=False)) if body is not None else 0


def build_answer(
    steering: Steering, user_text: str, tools: list[str], body: Any, default_tool_text: str = ""
) -> Answer:
    text = steering.content or (f"echo: {user_text}" if user_text else "Hello from the fake.")
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    if steering.output_tokens >= 0:
        while len(pieces) < steering.output_tokens:
            pieces.append(" lorem")
        pieces = pieces[: steering.output_tokens]
    tool_name = ""
    tool_args = ""
    if steering.tool_call:
        tool_name = tools[0] if steering.tool_call == "auto" and tools else steering.tool_call
        tool_args = steering.tool_args or json.dumps({"text": default_tool_text or user_text})
        pieces = [] if steering.output_tokens < 0 else pieces
    output = len(pieces) + (max(1, len(tool_args) // 4) if tool_name else 0)
    inp = steering.input_tokens if steering.input_tokens >= 0 else max(1, prompt_chars(body) // 4)
    return Answer(
        pieces=pieces,
        tool_name=tool_name,
        tool_args=tool_args,
        input_tokens=inp,
        output_tokens=output + steering.reasoning_tokens,
        cached_tokens=min(steering.cached_tokens, inp),
        reasoning_tokens=steering.reasoning_tokens,
    )
