"""Putting original values back where the model repeated a placeholder.

Streams: a placeholder can arrive split over chunks, so a stream restorer
holds back the shortest tail that could still grow into one (it starts with
``[`` and matches the placeholder grammar so far, at most ``MAX_PLACEHOLDER``
characters). Text that cannot be part of a placeholder is emitted at once.
Tool-call arguments are JSON text: the value is inserted JSON-escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from switchman_sidecar.pii.vault import MAX_PLACEHOLDER, PLACEHOLDER_RE

__all__ = ["Restorer", "StreamRestorer", "VaultRestorer", "VaultStreamRestorer"]

_PARTIAL = re.compile(r"\[(?:[A-Z][A-Z0-9_]*(?:[0-9a-f]*))?\Z")


class StreamRestorer:
    """Restores one stream of text (a message's content, or one tool call's
    arguments) chunk by chunk. This base class passes text through."""

    def feed(self, chunk: str) -> str:
        """Returns the text that is safe to emit now (may hold back a suffix
        that could be the start of a placeholder)."""
        return chunk

    def flush(self) -> str:
        """Stream end: whatever is still held back, restored."""
        return ""


class Restorer:
    """Replaces placeholders with original values. This base class has nothing
    to restore; the JSON variants default to the plain ones so that subclasses
    written against the original contract keep working."""

    def restore(self, text: str) -> str:
        return text

    def stream(self) -> StreamRestorer:
        """A fresh restorer for one streamed text channel."""
        return StreamRestorer()

    def restore_json(self, text: str) -> str:
        """Like ``restore`` for JSON text (tool-call arguments): values are
        inserted with JSON string escaping."""
        return self.restore(text)

    def stream_json(self) -> StreamRestorer:
        """A stream restorer for one tool call's streamed JSON arguments."""
        return self.stream()


def _replace(values: Mapping[str, str], text: str, as_json: bool) -> str:
    if "[" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        value = values.get(m.group())
        if value is None:
            return m.group()
        return json.dumps(value, ensure_ascii=False)[1:-1] if as_json else value

    return PLACEHOLDER_RE.sub(sub, text)


class VaultStreamRestorer(StreamRestorer):
    __slots__ = ("_as_json", "_held", "_values")

    def __init__(self, values: Mapping[str, str], as_json: bool) -> None:
        self._values = values
        self._as_json = as_json
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk if self._held else chunk
        cut = text.rfind("[")
        if cut < 0 or len(text) - cut > MAX_PLACEHOLDER or not _PARTIAL.match(text, cut):
            self._held = ""
            return _replace(self._values, text, self._as_json)
        self._held = text[cut:]
        return _replace(self._values, text[:cut], self._as_json)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return _replace(self._values, text, self._as_json)


class VaultRestorer(Restorer):
    """Restores the placeholders one request's vault issued."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def restore(self, text: str) -> str:
        return _replace(self._values, text, False)

    def restore_json(self, text: str) -> str:
        return _replace(self._values, text, True)

    def stream(self) -> StreamRestorer:
        return VaultStreamRestorer(self._values, False)

    def stream_json(self) -> StreamRestorer:
        return VaultStreamRestorer(self._values, True)
