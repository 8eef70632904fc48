"""The pass-through stream decoder (an OpenAI-family provider's events sent to an
OpenAI client as they came) gives the client what the dict decoder plus the
client encoder gave: the same chunks, the same usage, characters, end marker,
errors and "stream has started" signal, however the bytes are split."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from switchman_sidecar.adapters import UpstreamStreamError
from switchman_sidecar.adapters.openai import (
    OpenAIPassthroughDecoder,
    OpenAIStreamDecoder,
    stream_chars,
)
from switchman_sidecar.api_chat import OpenAIFrontend


def _chunk(rng: random.Random, i: int, usage: str) -> bytes:
    delta: dict[str, Any] = {}
    kind = rng.random()
    if kind < 0.5:
        delta["content"] = rng.choice(["hi", " wörld", 'say "x"\n', "", "\\", "😀", "a" * 30])
    elif kind < 0.7:
        delta["tool_calls"] = [
            {"index": 0, "function": {"arguments": rng.choice(['{"a":', "1}", '"q"'])}}
        ]
    chunk: dict[str, Any] = {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 1700000000 + i,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    text = orjson.dumps(chunk)
    if usage == "null-tail":
        text = text[:-1] + b',"usage":null}'
    elif usage == "null-head":
        text = b'{"usage":null,' + text[1:]
    elif usage == "spaced":
        text = orjson.dumps(chunk, option=orjson.OPT_INDENT_2).replace(b"\n", b"") + b" "
    return text


def _stream(rng: random.Random) -> bytes:
    usage = rng.choice(["none", "null-tail", "null-head", "spaced"])
    events: list[bytes] = []
    for i in range(rng.randint(1, 8)):
        events.append(b"data: " + _chunk(rng, i, usage) + b"\n\n")
        extra = rng.random()
        if extra < 0.05:
            events.append(b"data: {not json\n\n")
        elif extra < 0.1:
            events.append(b": keep-alive\n\n")
        elif extra < 0.15:
            events.append(b"data: [1, 2]\n\n")
        elif extra < 0.2:  # one chunk over two data lines
            text = _chunk(rng, i, usage)
            events.append(b"data: " + text[:10] + b"\ndata: " + text[10:] + b"\n\n")
        elif extra < 0.23:
            events.append(b"data:" + _chunk(rng, i, usage) + b"\n\n")  # no space
        elif extra < 0.26:
            events.append(b"event: x\n\n")
        elif extra < 0.28:
            events.append(b'data: {"choices":[],"x":"\xff"}\n\n')  # not UTF-8
        elif extra < 0.3:
            events.append(b'data: {"choices":[],"a":1,\r"usage":null}\n\n')  # bare CR
    tail = rng.random()
    if tail < 0.6:  # OpenAI's usage chunk
        events.append(
            b'data: {"id":"chatcmpl-7","object":"chat.completion.chunk","choices":[],'
            b'"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13,'
            b'"prompt_tokens_details":{"cached_tokens":2}}}\n\n'
        )
    elif tail < 0.7:  # usage on the last content chunk (some compatible servers)
        events.append(
            b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"z"}}],'
            b'"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
        )
    elif tail < 0.75:
        events.append(b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n')
    if rng.random() < 0.8:
        events.append(b"data: [DONE]\n\n")
    data = b"".join(events)
    if rng.random() < 0.3:
        data = data.replace(b"\n", b"\r\n")
    return data


def _old(
    data: bytes, cuts: list[int], client_usage: bool
) -> tuple[list[Any], list[int], dict[str, Any]]:
    dec = OpenAIStreamDecoder()
    enc = OpenAIFrontend().stream(client_usage)
    out: list[Any] = []
    sizes: list[int] = []
    chars = 0
    template: dict[str, Any] = {}
    error = None
    try:
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            chunks = dec.feed(data[a:b])
            sizes.append(len(chunks))
            for chunk in chunks:
                if not template:
                    template = {
                        k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk
                    }
                chars += stream_chars(chunk)
                out.append(enc.chunk(chunk))
    except UpstreamStreamError as exc:
        error = str(exc)
    state = {
        "usage": dec.usage,
        "finished": dec.finished,
        "chars": chars,
        "template": template,
        "error": error,
        "tail": enc.finish(template, dec.usage) if dec.usage and error is None else None,
    }
    return out, sizes, state


def _new(
    data: bytes, cuts: list[int], client_usage: bool
) -> tuple[list[Any], list[int], dict[str, Any]]:
    dec = OpenAIPassthroughDecoder(hide_usage=not client_usage)
    enc = OpenAIFrontend().stream(client_usage)
    out: list[Any] = []
    sizes: list[int] = []
    error = None
    try:
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            events = dec.feed(data[a:b])
            sizes.append(len(events))
            out.extend(events)
    except UpstreamStreamError as exc:
        error = str(exc)
    if dec.saw_usage:
        enc.saw_usage = True  # type: ignore[attr-defined]  # as relay() does
    state = {
        "usage": dec.usage,
        "finished": dec.finished,
        "chars": dec.chars,
        "template": dec.template,
        "error": error,
        "tail": enc.finish(dec.template, dec.usage) if dec.usage and error is None else None,
    }
    return out, sizes, state


def _events(out: list[bytes]) -> list[Any]:
    """What an SSE client reads: each event's data, as JSON."""
    events = []
    for item in out:
        if not item:
            continue
        assert item.startswith(b"data: ") and item.endswith(b"\n\n"), item
        line = item[6:-2]
        assert b"\n" not in line and b"\r" not in line, item
        events.append(orjson.loads(line))
    return events


@pytest.mark.parametrize("client_usage", [False, True])
def test_passthrough_matches_the_dict_decoder_on_random_streams(client_usage: bool) -> None:
    rng = random.Random(3 + client_usage)
    for _ in range(1500):
        data = _stream(rng)
        cuts = sorted(rng.sample(range(1, len(data)), min(rng.randint(0, 6), len(data) - 1)))
        old, old_sizes, old_state = _old(data, cuts, client_usage)
        new, new_sizes, new_state = _new(data, cuts, client_usage)
        assert _events(new) == _events(old), data
        # A read "starts the stream" (ends failover) exactly when it did before.
        assert [n > 0 for n in new_sizes] == [n > 0 for n in old_sizes], data
        if old_state["error"] is not None:
            # The stream ends with an error event: the template (for a synthesised
            # usage chunk) is not used, and may come from chunks of the failing read.
            del old_state["template"], new_state["template"]
        assert new_state == old_state, data


def test_unchanged_events_go_out_as_the_provider_sent_them() -> None:
    event = (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"caf\\u00e9 \\"x\\""}}]}\n\n'
    )
    dec = OpenAIPassthroughDecoder(hide_usage=False)
    assert dec.feed(event) == [event]  # escapes kept as sent, not re-encoded
    assert dec.chars == len('café "x"')
    # The client did not ask for usage: the null usage field is cut off the bytes.
    hidden = OpenAIPassthroughDecoder(hide_usage=True)
    with_null = event[:-3] + b',"usage":null}\n\n'
    assert hidden.feed(with_null) == [event]
    # The usage chunk asked for on the client's behalf is read, then dropped.
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
    assert hidden.feed(usage) == [b""]
    assert hidden.usage is not None and (hidden.usage.input, hidden.usage.output) == (5, 2)
    assert hidden.saw_usage and not hidden.finished
    assert hidden.feed(b"data: [DONE]\n\n") == [] and hidden.finished


async def test_a_provider_without_usage_still_gives_the_client_the_usage_it_asked_for(
    sdk: Any, records: Any, sidecar: Any
) -> None:
    """Through a real sidecar: the pass-through path keeps the first chunk's id and
    model for the usage chunk it synthesises, and the record is estimated."""
    c = sdk(sidecar, **{"x-fake-no-usage": "true"})
    stream = await c.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "echo: one two three"
    last = chunks[-1]
    assert not last.choices and last.usage is not None
    assert last.id == chunks[0].id and last.model == chunks[0].model
    [rec] = records(sidecar)
    assert rec.estimated and rec.output_tokens == (len(text) + 3) // 4
    assert last.usage.completion_tokens == rec.output_tokens
