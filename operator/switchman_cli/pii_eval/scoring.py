"""Token-level precision/recall/F1 on presidio-research's labelled format.

Token level (each ``\\w+`` run labelled with the entity covering it) is how
presidio-research scores detectors, and it is what matters for redaction: a
token of personal data left in clear is a miss, a clear token hidden is a
false alarm. Gold types are mapped onto ours (ADDRESS and ZIP_CODE →
STREET_ADDRESS, GPE → LOCATION); other gold types (ORGANIZATION, DATE_TIME…)
count as "not PII", so flagging them is a false positive. ``overall`` ignores
the type (PII or not), which is what a redactor is for.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GOLD_MAP", "Sample", "Scores", "load_samples", "score"]

GOLD_MAP = {
    "ADDRESS": "STREET_ADDRESS",
    "STREET_ADDRESS": "STREET_ADDRESS",
    "ZIP_CODE": "STREET_ADDRESS",
    "GPE": "LOCATION",
    "LOCATION": "LOCATION",
    "PERSON": "PERSON",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "US_SSN": "US_SSN",
    "IBAN_CODE": "IBAN_CODE",
    "IP_ADDRESS": "IP_ADDRESS",
}
TYPES = tuple(dict.fromkeys(GOLD_MAP.values()))
_TOKEN = re.compile(r"\w+")

Span = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    gold: tuple[Span, ...]


def load_samples(path: Path) -> list[Sample]:
    """presidio-research JSON: ``[{full_text, spans: [{entity_type, start_position,
    end_position}]}]``; gold types outside ``GOLD_MAP`` are dropped."""
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of samples")
    out = []
    for i, item in enumerate(data):
        try:
            text = item["full_text"]
            spans = tuple(
                (int(s["start_position"]), int(s["end_position"]), GOLD_MAP[s["entity_type"]])
                for s in item.get("spans") or []
                if s["entity_type"] in GOLD_MAP
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: sample {i} is not in the labelled format: {exc}") from exc
        out.append(Sample(text, spans))
    return out


def _labels(tokens: Sequence[tuple[int, int]], spans: Iterable[Span]) -> list[str | None]:
    labels: list[str | None] = [None] * len(tokens)
    for s, e, kind in spans:
        for k, (ts, te) in enumerate(tokens):
            if ts < e and s < te:
                labels[k] = kind
    return labels


@dataclass(slots=True)
class Scores:
    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)

    def add(self, sample: Sample, predicted: Iterable[Span], types: Sequence[str]) -> None:
        """Score one text; only ``types`` (what the detector claims to find) count."""
        wanted = set(types)
        tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(sample.text)]
        gold = _labels(tokens, (g for g in sample.gold if g[2] in wanted))
        pred = _labels(tokens, (p for p in predicted if p[2] in wanted))
        for g, p in zip(gold, pred, strict=True):
            if g is not None and g == p:
                self.tp[g] += 1
            else:
                if p is not None:
                    self.fp[p] += 1
                if g is not None:
                    self.fn[g] += 1
            if g is not None and p is not None:
                self.tp["_any"] += 1
            elif p is not None:
                self.fp["_any"] += 1
            elif g is not None:
                self.fn["_any"] += 1

    def report(self, types: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t in (*types, "_any"):
            tp, fp, fn = self.tp[t], self.fp[t], self.fn[t]
            p = tp / (tp + fp) if tp + fp else None
            r = tp / (tp + fn) if tp + fn else None
            f1 = (
                2 * p * r / (p + r)
                if p and r
                else (0.0 if p is not None and r is not None else None)
            )
            out["overall" if t == "_any" else t] = {
                "precision": _round(p),
                "recall": _round(r),
                "f1": _round(f1),
                "support": tp + fn,
            }
        return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def score(
    samples: Sequence[Sample], predictions: Sequence[Sequence[Span]], types: Sequence[str]
) -> dict[str, Any]:
    s = Scores()
    for sample, pred in zip(samples, predictions, strict=True):
        s.add(sample, pred, types)
    return s.report(types)
