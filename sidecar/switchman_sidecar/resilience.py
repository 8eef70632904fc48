"""Retry, backoff and circuit-breaking policy: pure decisions, no I/O.

Settings come from the table's Resilience message; zeros mean "use the
default", so an empty table still behaves like a careful client.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from switchman_protocol.v1 import routes_pb2

__all__ = ["BreakerRegistry", "CircuitBreaker", "RetryPolicy", "backoff_s", "retry_after_s"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    per_try_timeout_s: float = 60.0
    """For streams: the time to the first chunk (a stream may legitimately run longer)."""
    total_timeout_s: float = 300.0
    max_retries: int = 2
    """Retries of the same model before falling back to the next one."""
    backoff_base_s: float = 0.1
    backoff_max_s: float = 2.0
    breaker_failures: int = 5
    breaker_ejection_s: float = 30.0
    breaker_half_open: int = 1

    @classmethod
    def from_table(cls, table: routes_pb2.RouteTable) -> RetryPolicy:
        """Zero fields take the default, except ``max_retries`` in a table that
        sets ``resilience`` at all: there 0 means "do not retry"."""
        d = cls()
        r = table.resilience
        cb = r.circuit_breaker
        return cls(
            per_try_timeout_s=r.per_try_timeout_ms / 1000 or d.per_try_timeout_s,
            total_timeout_s=r.total_timeout_ms / 1000 or d.total_timeout_s,
            max_retries=r.max_retries if table.HasField("resilience") else d.max_retries,
            backoff_base_s=r.backoff_base_ms / 1000 or d.backoff_base_s,
            backoff_max_s=r.backoff_max_ms / 1000 or d.backoff_max_s,
            breaker_failures=cb.consecutive_failures or d.breaker_failures,
            breaker_ejection_s=cb.ejection_ms / 1000 or d.breaker_ejection_s,
            breaker_half_open=cb.half_open_requests or d.breaker_half_open,
        )


def backoff_s(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(max, base * 2^attempt)]."""
    cap = min(policy.backoff_max_s, policy.backoff_base_s * (2**attempt))
    return (rng or random).uniform(0, cap)


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (now if now is not None else time.time()))


class CircuitBreaker:
    """Consecutive-failure outlier ejection with half-open probing (Envoy-style).

    closed → (N consecutive failures) → open for ``ejection`` → half-open:
    up to ``half_open`` probes in flight; a success closes, a failure re-opens.
    """

    __slots__ = ("failures", "open_until", "probes", "state")

    def __init__(self) -> None:
        self.state = "closed"
        self.failures = 0
        self.open_until = 0.0
        self.probes = 0

    def allow(self, policy: RetryPolicy, now: float) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open":
            if now < self.open_until:
                return False
            self.state = "half-open"
            self.probes = 0
        if self.probes < policy.breaker_half_open:
            self.probes += 1
            return True
        return False

    def release(self) -> None:
        """An admitted request ended without an outcome (cancelled): free its probe slot."""
        if self.state == "half-open" and self.probes > 0:
            self.probes -= 1

    def record(self, ok: bool, policy: RetryPolicy, now: float) -> None:
        if ok:
            self.state = "closed"
            self.failures = 0
            self.probes = 0
            return
        self.failures += 1
        if self.state == "half-open" or self.failures >= policy.breaker_failures:
            self.state = "open"
            self.open_until = now + policy.breaker_ejection_s
            self.probes = 0


class BreakerRegistry:
    """Breakers keyed by endpoint URL; survives route-table swaps on purpose,
    so a reload does not forget that a provider is down."""

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, endpoint: str) -> CircuitBreaker:
        breaker = self._breakers.get(endpoint)
        if breaker is None:
            breaker = self._breakers[endpoint] = CircuitBreaker()
        return breaker

    def snapshot(self) -> dict[str, str]:
        return {name: b.state for name, b in self._breakers.items()}
