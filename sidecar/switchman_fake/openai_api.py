"""OpenAI wire format: chat completions (streamed and not, tool calls),
embeddings, responses. Pure renderers from an ``Answer`` to bytes."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import orjson

from switchman_fake.answers import Answer

__all__ = [
    "chat_body",
    "chat_frames",
    "embeddings_body",
    "error_body",
    "responses_body",
    "responses_frames",
]


def error_body(status: int, message: str) -> bytes:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_exceeded",
    }.get(status, "server_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}})


def _usage(a: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": a.input_tokens,
        "completion_tokens": a.output_tokens,
        "total_tokens": a.input_tokens + a.output_tokens,
        "prompt_tokens_details": {"cached_tokens": a.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": a.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call(a: Answer, rid: str) -> dict[str, Any]:
    return {
        "id": f"call_{rid[-8:]}",
        "type": "function",
        "function": {"name": a.tool_name, "arguments": a.tool_args},
    }


def chat_body(a: Answer, model: str, rid: str, usage: bool = True) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": a.text or None, "refusal": None}
    if a.tool_name:
        message["tool_calls"] = [_tool_call(a, rid)]
    return orjson.dumps(
        {
            "id": rid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if a.tool_name else "stop",
                }
            ],
            "usage": _usage(a) if usage else None,
            "system_fingerprint": "fp_fake",
        }
    )


def chat_frames(a: Answer, model: str, rid: str, include_usage: bool) -> list[bytes]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
        obj: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            obj["usage"] = usage
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
    frames += [chunk({"content": piece}) for piece in a.pieces]
    if a.tool_name:
        call = _tool_call(a, rid)
        first = {"index": 0, "id": call["id"], "type": "function"}
        first["function"] = {"name": a.tool_name, "arguments": ""}
        frames.append(chunk({"tool_calls": [first]}))
        args = a.tool_args
        for i in range(0, len(args), 7):
            part = {"index": 0, "function": {"arguments": args[i : i + 7]}}
            frames.append(chunk({"tool_calls": [part]}))
    frames.append(chunk({}, "tool_calls" if a.tool_name else "stop"))
    if include_usage:
        tail = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": _usage(a),
        }
        frames.append(b"data: " + orjson.dumps(tail) + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


def embeddings_body(inputs: list[str], model: str, encoding: str, tokens: int) -> bytes:
    data = []
    for i, text in enumerate(inputs):
        seed = sum(text.encode()) % 97
        vector = [((seed + j * 13) % 101) / 101.0 for j in range(8)]
        emb: Any = vector
        if encoding == "base64":
            emb = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


def _message_item(a: Answer, rid: str, done: bool) -> dict[str, Any]:
    parts = [{"type": "output_text", "text": a.text, "annotations": []}] if done else []
    return {
        "type": "message",
        "id": "msg_" + rid[5:],
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": parts,
    }


def _call_item(a: Answer, rid: str, done: bool) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_" + rid[5:],
        "call_id": "call_" + rid[-8:],
        "name": a.tool_name,
        "arguments": a.tool_args if done else "",
        "status": "completed" if done else "in_progress",
    }


def _response_output(a: Answer, rid: str) -> list[dict[str, Any]]:
    """A message item when there is text (or nothing else), a function_call item
    when the answer calls a tool: the order OpenAI sends them in."""
    out = []
    if a.pieces or not a.tool_name:
        out.append(_message_item(a, rid, True))
    if a.tool_name:
        out.append(_call_item(a, rid, True))
    return out


def _response_obj(a: Answer, model: str, rid: str, status: str) -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": _response_output(a, rid) if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": a.input_tokens,
            "input_tokens_details": {"cached_tokens": a.cached_tokens},
            "output_tokens": a.output_tokens,
            "output_tokens_details": {"reasoning_tokens": a.reasoning_tokens},
            "total_tokens": a.input_tokens + a.output_tokens,
        }
        if done
        else None,
    }


def responses_body(a: Answer, model: str, rid: str) -> bytes:
    return orjson.dumps(_response_obj(a, model, rid, "completed"))


def responses_frames(a: Answer, model: str, rid: str) -> list[bytes]:
    """The event sequence of a streamed response, as OpenAI sends it: created,
    in_progress, per output item added → (content part added → text deltas →
    text done → part done | argument deltas → arguments done) → item done, then
    completed with the whole response."""
    seq = 0

    def event(kind: str, payload: dict[str, Any]) -> bytes:
        nonlocal seq
        seq += 1
        data = {"type": kind, "sequence_number": seq, **payload}
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    frames = [
        event("response.created", {"response": _response_obj(a, model, rid, "in_progress")}),
        event("response.in_progress", {"response": _response_obj(a, model, rid, "in_progress")}),
    ]
    for index, item in enumerate(_response_output(a, rid)):
        at = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            start = _message_item(a, rid, False)
            frames.append(
                event("response.output_item.added", {"output_index": index, "item": start})
            )
            empty = {"type": "output_text", "text": "", "annotations": []}
            frames.append(
                event("response.content_part.added", {**at, "content_index": 0, "part": empty})
            )
            for piece in a.pieces:
                frames.append(
                    event(
                        "response.output_text.delta",
                        {**at, "content_index": 0, "delta": piece, "logprobs": []},
                    )
                )
            frames.append(
                event(
                    "response.output_text.done",
                    {**at, "content_index": 0, "text": a.text, "logprobs": []},
                )
            )
            frames.append(
                event(
                    "response.content_part.done",
                    {**at, "content_index": 0, "part": item["content"][0]},
                )
            )
        else:
            start = _call_item(a, rid, False)
            frames.append(
                event("response.output_item.added", {"output_index": index, "item": start})
            )
            args = a.tool_args
            for i in range(0, len(args), 7):  # small deltas: placeholders get split
                frames.append(
                    event(
                        "response.function_call_arguments.delta", {**at, "delta": args[i : i + 7]}
                    )
                )
            frames.append(
                event(
                    "response.function_call_arguments.done",
                    {**at, "name": a.tool_name, "arguments": args},
                )
            )
        frames.append(event("response.output_item.done", {"output_index": index, "item": item}))
    frames.append(
        event("response.completed", {"response": _response_obj(a, model, rid, "completed")})
    )
    return frames
