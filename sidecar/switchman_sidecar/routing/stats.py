"""Observed behaviour per model: latency EWMA, error rate EWMA, requests in flight.

Fed by ``Router.start`` / ``Router.observe`` from the pipeline; read by the
latency strategy and by every strategy's error penalty. Kept per route table
(a new table starts fresh, which also forgets a model that was replaced).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["ModelStats", "StatsBook"]

#: Weight of the newest observation; ~10 requests of memory.
ALPHA = 0.2
#: A model nobody has measured is assumed this slow (ms), so it gets tried.
DEFAULT_LATENCY_MS = 1000.0
#: In-flight counts older than this (s) are stale (a lost observe) and reset.
INFLIGHT_STALE_S = 300.0


@dataclass(slots=True)
class ModelStats:
    latency_ms: float | None = None
    error_rate: float = 0.0
    in_flight: int = 0
    samples: int = 0
    touched: float = 0.0


class StatsBook:
    def __init__(self) -> None:
        self._stats: dict[str, ModelStats] = {}

    @property
    def observed(self) -> dict[str, ModelStats]:
        """Models with any observation (read-only use: the hot path skips the rest)."""
        return self._stats

    def get(self, model: str) -> ModelStats:
        stats = self._stats.get(model)
        if stats is None:
            stats = self._stats[model] = ModelStats()
        return stats

    def start(self, model: str) -> None:
        stats = self.get(model)
        now = time.monotonic()
        if stats.in_flight and now - stats.touched > INFLIGHT_STALE_S:
            stats.in_flight = 0
        stats.in_flight += 1
        stats.touched = now

    def observe(self, model: str, latency_ms: float, ok: bool) -> None:
        stats = self.get(model)
        if stats.in_flight:
            stats.in_flight -= 1
        stats.touched = time.monotonic()
        stats.samples += 1
        if ok:  # failed attempts are often fast and would flatter the model
            stats.latency_ms = (
                latency_ms
                if stats.latency_ms is None
                else (1 - ALPHA) * stats.latency_ms + ALPHA * latency_ms
            )
        stats.error_rate = (1 - ALPHA) * stats.error_rate + ALPHA * (0.0 if ok else 1.0)

    def expected_latency_ms(self, model: str) -> float:
        """EWMA latency inflated by current load (each request in flight adds 25%)."""
        stats = self._stats.get(model)
        if stats is None:
            return DEFAULT_LATENCY_MS
        base = stats.latency_ms if stats.latency_ms is not None else DEFAULT_LATENCY_MS
        return base * (1.0 + 0.25 * stats.in_flight)

    def error_rate(self, model: str) -> float:
        stats = self._stats.get(model)
        return stats.error_rate if stats is not None else 0.0

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "latency_ms": s.latency_ms or 0.0,
                "error_rate": s.error_rate,
                "in_flight": float(s.in_flight),
            }
            for name, s in self._stats.items()
        }
