"""Incremental server-sent-events parsing (what every provider streams)."""

from __future__ import annotations

__all__ = ["SseParser", "sse_frame"]


class SseParser:
    """Feed bytes as they arrive; get complete ``(event, data)`` pairs back."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        if b"\n\n" not in buf:
            self._buf = buf
            return []
        # One split, not a find-and-slice per event (which copied the rest of the
        # buffer once per event).
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
        events: list[tuple[str, str]] = []
        for block in blocks:
            if block.startswith(b"data: ") and b"\n" not in block:
                events.append(("", block[6:].decode("utf-8", "replace")))  # the usual event
                continue
            event = ""
            data_lines: list[str] = []
            for line in block.decode("utf-8", "replace").split("\n"):
                if line.startswith("data:"):
                    data_lines.append(line[6:] if line.startswith("data: ") else line[5:])
                elif line.startswith("event:"):
                    event = line[6:].strip()
            if data_lines or event:
                events.append((event, "\n".join(data_lines)))
        return events

    @property
    def pending(self) -> bool:
        return bool(self._buf.strip())


def sse_frame(data: bytes, event: str = "") -> bytes:
    if event:
        return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"
