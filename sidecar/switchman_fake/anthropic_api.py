"""Anthropic Messages wire format: a message, or the SSE event sequence
(message_start, content_block_*, message_delta, message_stop) with tool_use."""

from __future__ import annotations

from typing import Any

import orjson

from switchman_fake.answers import Answer

__all__ = ["error_body", "message_body", "message_frames"]


def error_body(status: int, message: str) -> bytes:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def _usage(a: Answer, output: int) -> dict[str, Any]:
    return {
        "input_tokens": a.input_tokens - a.cached_tokens,
        "cache_read_input_tokens": a.cached_tokens,
        "cache_creation_input_tokens": 0,
        "output_tokens": output,
    }


def message_body(a: Answer, model: str, rid: str) -> bytes:
    content: list[dict[str, Any]] = []
    if a.pieces:
        content.append({"type": "text", "text": a.text})
    if a.tool_name:
        content.append(
            {
                "type": "tool_use",
                "id": "toolu_" + rid[-8:],
                "name": a.tool_name,
                "input": orjson.loads(a.tool_args),
            }
        )
    return orjson.dumps(
        {
            "id": rid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if a.tool_name else "end_turn",
            "stop_sequence": None,
            "usage": _usage(a, a.output_tokens),
        }
    )


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


def message_frames(a: Answer, model: str, rid: str) -> list[bytes]:
    start: dict[str, Any] = {
        "id": rid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(a, 1),
    }
    frames = [_event("message_start", {"message": start}), _event("ping", {})]
    index = 0
    if a.pieces:
        block: dict[str, Any] = {"type": "text", "text": ""}
        frames.append(_event("content_block_start", {"index": index, "content_block": block}))
        for piece in a.pieces:
            delta = {"type": "text_delta", "text": piece}
            frames.append(_event("content_block_delta", {"index": index, "delta": delta}))
        frames.append(_event("content_block_stop", {"index": index}))
        index += 1
    if a.tool_name:
        block = {
            "type": "tool_use",
            "id": "toolu_" + rid[-8:],
            "name": a.tool_name,
            "input": {},
        }
        frames.append(_event("content_block_start", {"index": index, "content_block": block}))
        for i in range(0, len(a.tool_args), 7):
            delta = {"type": "input_json_delta", "partial_json": a.tool_args[i : i + 7]}
            frames.append(_event("content_block_delta", {"index": index, "delta": delta}))
        frames.append(_event("content_block_stop", {"index": index}))
    stop = "tool_use" if a.tool_name else "end_turn"
    frames.append(
        _event(
            "message_delta",
            {
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": a.output_tokens},
            },
        )
    )
    frames.append(_event("message_stop", {}))
    return frames
