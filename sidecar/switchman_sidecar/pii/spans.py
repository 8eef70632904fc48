"""A finding: where an entity is in a text and what it is.

Kept as a NamedTuple (a plain tuple at run time) because a 4 KB prompt can
produce hundreds of candidates and the scan budget is about a millisecond.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

__all__ = ["Finding", "resolve_overlaps"]


class Finding(NamedTuple):
    start: int
    end: int
    entity: str
    rank: int = 50
    """Lower wins an overlap: validated structured entities beat shapes and names."""


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep a non-overlapping subset: best rank first, then the longer span.

    Chosen spans are kept sorted and disjoint, so one ``bisect`` finds the
    only neighbours a candidate could overlap (n log n, not n²)."""
    if len(findings) < 2:
        return findings
    starts: list[int] = []
    ends: list[int] = []
    chosen: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.rank, f.start - f.end, f.start)):
        k = bisect.bisect_left(starts, f.start)
        if k < len(starts) and starts[k] < f.end:
            continue  # a chosen span starts inside this one
        if k > 0 and ends[k - 1] > f.start:
            continue  # the chosen span before reaches into this one
        starts.insert(k, f.start)
        ends.insert(k, f.end)
        chosen.append(f)
    chosen.sort()
    return chosen
