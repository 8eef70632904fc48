"""Gemini wire format: generateContent and streamGenerateContent (alt=sse)."""

from __future__ import annotations

from typing import Any

import orjson

from switchman_fake.answers import Answer

__all__ = ["error_body", "generate_body", "generate_frames"]


def error_body(status: int, message: str) -> bytes:
    names = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
    err = {"code": status, "message": message, "status": names.get(status, "UNAVAILABLE")}
    return orjson.dumps({"error": err})


def _usage(a: Answer) -> dict[str, Any]:
    return {
        "promptTokenCount": a.input_tokens,
        "cachedContentTokenCount": a.cached_tokens,
        "candidatesTokenCount": a.output_tokens - a.reasoning_tokens,
        "thoughtsTokenCount": a.reasoning_tokens,
        "totalTokenCount": a.input_tokens + a.output_tokens,
    }


def _candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return cand


def generate_body(a: Answer, model: str) -> bytes:
    parts: list[dict[str, Any]] = []
    if a.pieces:
        parts.append({"text": a.text})
    if a.tool_name:
        parts.append({"functionCall": {"name": a.tool_name, "args": orjson.loads(a.tool_args)}})
    return orjson.dumps(
        {
            "candidates": [_candidate(parts, "STOP")],
            "usageMetadata": _usage(a),
            "modelVersion": model,
        }
    )


def generate_frames(a: Answer, model: str) -> list[bytes]:
    frames = []
    pieces = a.pieces or [""]
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1 and not a.tool_name
        obj: dict[str, Any] = {
            "candidates": [_candidate([{"text": piece}], "STOP" if last else None)],
            "modelVersion": model,
        }
        if last:
            obj["usageMetadata"] = _usage(a)
        frames.append(b"data: " + orjson.dumps(obj) + b"\r\n\r\n")
    if a.tool_name:
        call = {"functionCall": {"name": a.tool_name, "args": orjson.loads(a.tool_args)}}
        obj = {
            "candidates": [_candidate([call], "STOP")],
            "usageMetadata": _usage(a),
            "modelVersion": model,
        }
        frames.append(b"data: " + orjson.dumps(obj) + b"\r\n\r\n")
    return frames
