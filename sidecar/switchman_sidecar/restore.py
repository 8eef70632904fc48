"""Putting redacted values back into answers, whole or streamed.

One stream restorer per text channel (each choice's content, each tool call's
arguments), because a placeholder can be split across chunks of one channel
but never spans two channels. Held-back text is flushed into the chunk that
finishes its choice, or into a final chunk if the stream ends without one.
"""

from __future__ import annotations

from typing import Any

from switchman_sidecar.pii import Restorer, StreamRestorer

__all__ = ["ChunkRestorer", "restore_completion"]


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

    def process(self, chunk: dict[str, Any]) -> None:
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

    def flush_all(self, template: dict[str, Any]) -> dict[str, Any] | None:
        """Stream ended without finishing some choices: a last chunk with the rest."""
        if not self._channels:
            return None
        choices = []
        for index in sorted({c for c, _ in self._channels}):
            delta: dict[str, Any] = {}
            self._flush_into(index, delta)
            if delta:
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        if not choices:
            return None
        return {**template, "choices": choices}
