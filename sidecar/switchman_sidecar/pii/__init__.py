"""PII redaction before a request leaves the pod and restoration in the answer.

Contract used by the request pipeline: a ``PiiEngine`` is built once per route
table from its PiiPolicy (ValueError → the table is NACKed); ``redact`` is
called on every request body; the returned ``Redaction`` says whether to block,
whether only compliant models may answer, and hands out a ``Restorer`` that
puts original values back into the answer (whole texts or stream chunks;
``restore_json``/``stream_json`` for tool-call arguments, which are JSON).

Layout: ``patterns`` and ``validators`` (structured entities), ``names`` and
``address`` over a ``gazetteer`` (PERSON, STREET_ADDRESS, LOCATION),
``detector`` (one scan, overlaps resolved), ``vault`` (placeholders, mask,
hash), ``walker`` (every text part per API shape), ``restorer`` (whole and
streamed), ``engine`` (the policy).
"""

from __future__ import annotations

from switchman_sidecar.pii.detector import BUILTIN_ENTITIES, Detector
from switchman_sidecar.pii.engine import PiiEngine, Redaction
from switchman_sidecar.pii.restorer import Restorer, StreamRestorer

__all__ = ["BUILTIN_ENTITIES", "Detector", "PiiEngine", "Redaction", "Restorer", "StreamRestorer"]
