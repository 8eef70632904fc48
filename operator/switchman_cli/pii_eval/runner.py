"""Run detectors over labelled samples: quality, and scan time per KB.

Two timings: per sample (µs per KB of text; the samples are short, so this
includes per-call overhead) and on ~4 KB prompts made by joining samples
(the issue's budget: ≤ 1 ms p50 for a 4 KB prompt). Presidio-analyzer runs
its pattern recognizers directly (no AnalyzerEngine: that would load a spaCy
model, which is neither installed nor fetched); it has no PERSON or address
recogniser without one, so those rows are absent on its side.
"""

from __future__ import annotations

import statistics
import sys
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

from switchman_cli.pii_eval.scoring import Sample, Span, score

__all__ = ["PRESIDIO_TYPES", "Detect", "evaluate", "ours", "presidio", "prompts_of"]

Detect = Callable[[str], list[Span]]


def ours(*, gazetteer_exclude: frozenset[str] = frozenset()) -> Detect:
    from switchman_sidecar.pii.detector import Detector
    from switchman_sidecar.pii.gazetteer import load_gazetteer

    gaz = load_gazetteer()
    if gazetteer_exclude:
        import dataclasses

        gaz = dataclasses.replace(
            gaz,
            first_names=gaz.first_names - gazetteer_exclude,
            last_names=gaz.last_names - gazetteer_exclude,
            places=gaz.places - gazetteer_exclude,
        )
    det = Detector(gazetteer=gaz)

    def detect(text: str) -> list[Span]:
        return [(f.start, f.end, f.entity) for f in det.scan(text)]

    return detect


PRESIDIO_TYPES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
)


def presidio() -> Detect | None:
    """Presidio's predefined pattern recognizers, or None when not installed."""
    try:
        import tldextract
        from presidio_analyzer import predefined_recognizers as pr
    except ImportError:
        return None
    # Presidio's e-mail check asks tldextract, which would fetch the public
    # suffix list from the network; use the snapshot bundled in the package.
    offline = tldextract.TLDExtract(suffix_list_urls=())
    email_module = sys.modules[pr.EmailRecognizer.__module__]
    email_module.tldextract = types.SimpleNamespace(extract=offline)  # type: ignore[attr-defined]
    recognizers = [
        pr.EmailRecognizer(),
        pr.PhoneRecognizer(),
        pr.CreditCardRecognizer(),
        pr.UsSsnRecognizer(),
        pr.IbanRecognizer(),
        pr.IpRecognizer(),
    ]
    entities = list(PRESIDIO_TYPES)

    def detect(text: str) -> list[Span]:
        out: list[Span] = []
        for r in recognizers:
            for res in r.analyze(text, entities, None):  # type: ignore[arg-type]
                out.append((res.start, res.end, res.entity_type))
        return out

    return detect


def prompts_of(samples: Sequence[Sample], size: int = 4096) -> list[str]:
    """~``size``-character prompts made by joining consecutive samples."""
    out: list[str] = []
    buf: list[str] = []
    n = 0
    for s in samples:
        buf.append(s.text)
        n += len(s.text) + 2
        if n >= size:
            out.append("\n\n".join(buf)[:size])
            buf, n = [], 0
    return out


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def evaluate(
    detect: Detect, samples: Sequence[Sample], types: Sequence[str], repeats: int = 3
) -> dict[str, Any]:
    predictions = [detect(s.text) for s in samples]
    per_kb: list[float] = []
    for s in samples:
        size = len(s.text.encode())
        if size == 0:
            continue
        t0 = time.perf_counter_ns()
        detect(s.text)
        per_kb.append((time.perf_counter_ns() - t0) / 1000 / (size / 1024))
    prompts = prompts_of(samples)
    four_kb: list[float] = []
    for _ in range(repeats):
        for p in prompts:
            t0 = time.perf_counter_ns()
            detect(p)
            four_kb.append((time.perf_counter_ns() - t0) / 1e6)
    return {
        "scores": score(samples, predictions, types),
        "scan_us_per_kb": {
            "p50": round(statistics.median(per_kb), 1),
            "p99": round(_pct(per_kb, 0.99), 1),
        },
        "scan_ms_4kb_prompt": {
            "p50": round(statistics.median(four_kb), 3) if four_kb else None,
            "p99": round(_pct(four_kb, 0.99), 3) if four_kb else None,
            "prompts": len(prompts),
        },
    }
