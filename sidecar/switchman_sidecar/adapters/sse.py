"""Incremental server-sent-events parsing (what every provider streams)."""

from __future__ import annotations

__all__ = ["SseParser", "parse_block", "sse_frame"]


class SseParser:
    """Feed bytes as they arrive; get complete ``(event, data)`` pairs back."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def blocks(self, data: bytes) -> list[bytes]:
        """The complete events in ``data`` (and what was held back), raw: CRLF made LF,
        no terminating blank line. The rest waits for the next call."""
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
        return blocks

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        events: list[tuple[str, str]] = []
        for block in self.blocks(data):
            if block.startswith(b"data: ") and b"\n" not in block:
                events.append(("", block[6:].decode("utf-8", "replace")))  # the usual event
            elif (parsed := parse_block(block)) is not None:
                events.append(parsed)
        return events

    @property
    def pending(self) -> bool:
        return bool(self._buf.strip())


def parse_block(block: bytes) -> tuple[str, str] | None:
    """One raw event's ``(event, data)``: ``data:`` lines joined, ``event:`` kept; None
    for a block with neither (a comment, a lone ``id:``)."""
    event = ""
    data_lines: list[str] = []
    for line in block.decode("utf-8", "replace").split("\n"):
        if line.startswith("data:"):
            data_lines.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("event:"):
            event = line[6:].strip()
    if not data_lines and not event:
        return None
    return event, "\n".join(data_lines)


def sse_frame(data: bytes, event: str = "") -> bytes:
    if event:
        return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"
