"""Putting redacted values back into answers, whole or streamed.

One stream restorer per text channel (each choice's content, each tool call's
arguments), because a placeholder can be split across chunks of one channel
but never spans two channels. Held-back text is flushed into the chunk that
finishes its choice, or into a final chunk if the stream ends without one.
"""

from __future__ import annotations

from typing import Any

from switchman_sidecar.pii import Restorer, StreamRestorer

__all__ = ["ChunkRestorer", "ResponsesRestorer", "restore_completion", "restore_responses_output"]


def restore_completion(result: dict[str, Any], restorer: Restorer) -> None:
    for choice in result.get("choices") or []:
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            message["content"] = restorer.restore(message["content"])
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            if isinstance(fn.get("arguments"), str):
                fn["arguments"] = restorer.restore_json(fn["arguments"])


class ChunkRestorer:
    """Rewrites canonical chunks in place; see module doc."""

    def __init__(self, restorer: Restorer) -> None:
        self._restorer = restorer
        self._channels: dict[tuple[int, int], StreamRestorer] = {}

    def _channel(self, choice: int, tool: int) -> StreamRestorer:
        key = (choice, tool)
        ch = self._channels.get(key)
        if ch is None:
            # tool-call arguments are JSON text: values go back JSON-escaped
            ch = self._channels[key] = (
                self._restorer.stream() if tool < 0 else self._restorer.stream_json()
            )
        return ch

    def process(self, chunk: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Rewrites ``chunk``; returns events to send before it (never, for chat)."""
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                delta["content"] = self._channel(index, -1).feed(delta["content"])
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                if isinstance(fn.get("arguments"), str):
                    fn["arguments"] = self._channel(index, int(call.get("index", 0))).feed(
                        fn["arguments"]
                    )
            if choice.get("finish_reason"):
                self._flush_into(index, delta)
        return None

    def _flush_into(self, index: int, delta: dict[str, Any]) -> None:
        for (choice, tool), ch in list(self._channels.items()):
            if choice != index:
                continue
            rest = ch.flush()
            del self._channels[(choice, tool)]
            if not rest:
                continue
            if tool < 0:
                delta["content"] = (delta.get("content") or "") + rest
            else:
                calls = delta.setdefault("tool_calls", [])
                calls.append({"index": tool, "function": {"arguments": rest}})

    def flush_all(self, template: dict[str, Any]) -> list[dict[str, Any]]:
        """Stream ended without finishing some choices: a last chunk with the rest."""
        if not self._channels:
            return []
        choices = []
        for index in sorted({c for c, _ in self._channels}):
            delta: dict[str, Any] = {}
            self._flush_into(index, delta)
            if delta:
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        if not choices:
            return []
        return [{**template, "choices": choices}]


def restore_responses_output(output: Any, restorer: Restorer) -> None:
    """A Responses API ``output`` list (or one item): texts and function-call arguments."""
    for item in output if isinstance(output, list) else [output]:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("arguments"), str):
            item["arguments"] = restorer.restore_json(item["arguments"])
        for part in item.get("content") or []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = restorer.restore(part["text"])


_TEXT_DELTA = "response.output_text.delta"
_ARGS_DELTA = "response.function_call_arguments.delta"


class ResponsesRestorer:
    """The same for Responses API events: one stream restorer per text part
    (output item, content part) and per function call's arguments. The text a
    restorer holds back (a possible placeholder prefix) goes out as one more
    delta event just before the part's ``.done`` event; the ``.done``,
    ``content_part.done``, ``output_item.done`` and ``response.completed``
    events carry whole texts and are restored whole."""

    def __init__(self, restorer: Restorer) -> None:
        self._restorer = restorer
        self._channels: dict[tuple[str, int, int], tuple[StreamRestorer, dict[str, Any]]] = {}
        self._shift = 0  # events inserted so far: later sequence numbers move up by this
        self._next: int | None = None  # the number the next event gets

    def _feed(self, kind: str, ev: dict[str, Any]) -> None:
        key = (kind, int(ev.get("output_index", 0)), int(ev.get("content_index", 0)))
        entry = self._channels.get(key)
        if entry is None:
            stream = (
                self._restorer.stream() if kind == _TEXT_DELTA else self._restorer.stream_json()
            )
            entry = self._channels[key] = (stream, ev)
        ev["delta"] = entry[0].feed(ev["delta"])

    def _rest(self, kind: str, ev: dict[str, Any]) -> list[dict[str, Any]] | None:
        key = (kind, int(ev.get("output_index", 0)), int(ev.get("content_index", 0)))
        entry = self._channels.pop(key, None)
        if entry is None:
            return None
        rest = entry[0].flush()
        return [_delta_like(entry[1], rest)] if rest else None

    def process(self, ev: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Rewrites ``ev``; returns events to send before it. Inserted events take
        the sequence numbers where they stand and every later event moves up, so
        the client still sees numbers that increase by one."""
        before = self._process(ev)
        seq = ev.get("sequence_number")
        if isinstance(seq, int):
            for inserted in before or ():
                inserted["sequence_number"] = seq + self._shift
                self._shift += 1
            ev["sequence_number"] = seq + self._shift
            self._next = seq + self._shift + 1
        return before

    def _process(self, ev: dict[str, Any]) -> list[dict[str, Any]] | None:
        kind = ev.get("type")
        r = self._restorer
        if kind in (_TEXT_DELTA, _ARGS_DELTA) and isinstance(ev.get("delta"), str):
            self._feed(kind, ev)
        elif kind == "response.output_text.done":
            if isinstance(ev.get("text"), str):
                ev["text"] = r.restore(ev["text"])
            return self._rest(_TEXT_DELTA, ev)
        elif kind == "response.function_call_arguments.done":
            if isinstance(ev.get("arguments"), str):
                ev["arguments"] = r.restore_json(ev["arguments"])
            return self._rest(_ARGS_DELTA, ev)
        elif kind == "response.content_part.done":
            part = ev.get("part")
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = r.restore(part["text"])
        elif kind == "response.output_item.done":
            restore_responses_output(ev.get("item"), r)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = ev.get("response")
            if isinstance(response, dict):
                restore_responses_output(response.get("output"), r)
            return self._flush() or None  # parts never marked done: their rest first
        return None

    def flush_all(self, template: dict[str, Any]) -> list[dict[str, Any]]:
        """The stream ended with parts unfinished: their held-back text as deltas,
        numbered after the last event sent."""
        out = self._flush()
        if self._next is not None:
            for n, ev in enumerate(out, self._next):
                ev["sequence_number"] = n
        return out

    def _flush(self) -> list[dict[str, Any]]:
        out = []
        for stream, first in self._channels.values():
            rest = stream.flush()
            if rest:
                out.append(_delta_like(first, rest))
        self._channels.clear()
        return out


def _delta_like(first: dict[str, Any], text: str) -> dict[str, Any]:
    """A delta event for the same part as ``first``; ``process`` / ``flush_all``
    give it its sequence number."""
    keep = ("type", "item_id", "output_index", "content_index")
    return {**{k: first[k] for k in keep if k in first}, "delta": text}
