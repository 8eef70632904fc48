"""How a test tells the fake what to do with one request.

Every knob can come from a header ``x-fake-<name>`` or from a path prefix
``/_steer/<name>=<value>,<name>=<value>/...`` (the latter lets a route table
give each model its own behaviour, e.g. one endpoint that always returns 503).
Headers win over the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import unquote

__all__ = ["Steering", "split_steer_path"]


@dataclass(slots=True)
class Steering:
    latency_ms: float = 0.0
    """Delay before the response head (non-streamed) or before the stream opens."""
    ttft_ms: float = 0.0
    """Delay between the stream's head and its first content chunk."""
    drip_ms: float = 0.0
    """Delay between stream chunks (a slow provider)."""
    input_tokens: int = -1
    """Reported prompt tokens; -1 = estimate from the request (chars/4)."""
    output_tokens: int = -1
    """Number of output pieces (one token each); -1 = one per word of the content."""
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    status: int = 200
    retry_after: str = ""
    fail_first: int = 0
    """Fail this many requests carrying the same ``key`` with ``status`` (default 503)."""
    key: str = ""
    cut_after: int = -1
    """Abort the connection after this many stream chunks (mid-stream cut)."""
    content: str = ""
    """Answer text; empty = echo the last user text."""
    tool_call: str = ""
    """Answer with a call to this tool ("auto" = the first tool offered)."""
    tool_args: str = ""
    """JSON arguments of that call; empty = {"text": <last user text>}."""
    cassette: str = ""
    """``<cassette file stem>#<interaction index>``: replay that recorded answer."""
    error_message: str = ""
    no_usage: bool = False
    """Report no usage at all (providers that do not, or a cut stream)."""

    @classmethod
    def from_sources(cls, path_steer: str, headers: Mapping[str, str]) -> Steering:
        values: dict[str, str] = {}
        if path_steer:
            for item in path_steer.split(","):
                name, _, value = item.partition("=")
                values[name.strip().replace("-", "_")] = unquote(value)
        for name, value in headers.items():
            if name.startswith("x-fake-"):
                values[name[7:].replace("-", "_")] = value
        steering = cls()
        for f in fields(cls):
            if f.name in values:
                raw = values[f.name]
                current = getattr(steering, f.name)
                if isinstance(current, bool):
                    setattr(steering, f.name, raw.lower() in ("1", "true", "yes"))
                elif isinstance(current, int):
                    setattr(steering, f.name, int(raw))
                elif isinstance(current, float):
                    setattr(steering, f.name, float(raw))
                else:
                    setattr(steering, f.name, raw)
        return steering


def split_steer_path(path: str) -> tuple[str, str]:
    """``/_steer/a=1,b=2/v1/x`` → (``a=1,b=2``, ``/v1/x``)."""
    if not path.startswith("/_steer/"):
        return "", path
    rest = path[len("/_steer/") :]
    steer, _, tail = rest.partition("/")
    return steer, "/" + tail
