"""A finding: where an entity is in a text and what it is.

Kept as a NamedTuple (a plain tuple at run time) because a 4 KB prompt can
produce hundreds of candidates and the scan budget is about a millisecond.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Finding", "resolve_overlaps"]


class Finding(NamedTuple):
    start: int
    end: int
    entity: str
    rank: int = 50
    """Lower wins an overlap: validated structured entities beat shapes and names."""


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep a non-overlapping subset: best rank first, then the longer span."""
    if len(findings) < 2:
        return findings
    chosen: list[Finding] = []
    taken: list[tuple[int, int]] = []
    for f in sorted(findings, key=lambda f: (f.rank, f.start - f.end, f.start)):
        if any(f.start < e and s < f.end for s, e in taken):
            continue
        chosen.append(f)
        taken.append((f.start, f.end))
    chosen.sort()
    return chosen
