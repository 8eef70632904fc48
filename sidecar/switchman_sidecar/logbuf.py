"""Log lines off the request path: batched, one write per batch.

stderr is line-buffered, so a JSON line per request (access log) plus one per
usage record cost two ``write`` syscalls per request on the event loop. Lines
are collected here and written together shortly after (``delay_s``), or at
once when the batch is large; ``flush`` at shutdown writes what is left. A
sidecar killed hard loses at most ``delay_s`` of log lines (the usage records
themselves go to their sink, not only to this log).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

__all__ = ["LineBuffer"]


class LineBuffer:
    __slots__ = ("_delay_s", "_flush_bytes", "_handle", "_parts", "_size", "_stream")

    def __init__(
        self, stream: TextIO | None = None, delay_s: float = 0.05, flush_bytes: int = 64 * 1024
    ) -> None:
        self._stream = stream
        self._delay_s = delay_s
        self._flush_bytes = flush_bytes
        self._parts: list[bytes] = []
        self._size = 0
        self._handle: asyncio.TimerHandle | None = None

    def write(self, line: bytes) -> None:
        """``line`` is one complete line, newline included."""
        self._parts.append(line)
        self._size += len(line)
        if self._size >= self._flush_bytes:
            self.flush()
        elif self._handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): write now
                self.flush()
                return
            self._handle = loop.call_later(self._delay_s, self.flush)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._parts:
            return
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        stream = self._stream or sys.stderr  # looked up late: tests swap sys.stderr
        try:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken log stream must not fail requests
