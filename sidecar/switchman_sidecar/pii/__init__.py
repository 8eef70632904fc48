"""PII redaction before a request leaves the pod and restoration in the answer.

Contract used by the request pipeline: an ``PiiEngine`` is built once per route
table from its PiiPolicy (ValueError → the table is NACKed); ``redact`` is
called on every request body; the returned ``Redaction`` says whether to block,
whether only compliant models may answer, and hands out a ``Restorer`` that
puts original values back into the answer (whole texts or stream chunks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from switchman_protocol.v1 import routes_pb2

__all__ = ["PiiEngine", "Redaction", "Restorer", "StreamRestorer"]


class StreamRestorer:
    """Restores one stream of text (a message's content, or one tool call's
    arguments) chunk by chunk. Baseline: passes text through."""

    def feed(self, chunk: str) -> str:
        """Returns the text that is safe to emit now (may hold back a suffix
        that could be the start of a placeholder)."""
        return chunk

    def flush(self) -> str:
        """Stream end: whatever is still held back, restored."""
        return ""


class Restorer:
    """Replaces placeholders with original values. Baseline: nothing to restore."""

    def restore(self, text: str) -> str:
        return text

    def stream(self) -> StreamRestorer:
        """A fresh restorer for one streamed text channel."""
        return StreamRestorer()


@dataclass(slots=True)
class Redaction:
    body: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    blocked: str | None = None
    """Entity type that blocks the request, if any."""
    compliant_only: bool = False
    """Only models whose compliance tags intersect the policy's may answer."""
    restorer: Restorer = field(default_factory=Restorer)


class PiiEngine:
    """Baseline engine: reports nothing and changes nothing."""

    def __init__(self, policy: routes_pb2.PiiPolicy) -> None:
        self.policy = policy

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    def redact(self, body: dict[str, Any], api: str) -> Redaction:
        return Redaction(body=body)
