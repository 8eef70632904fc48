"""Per-model RPM/TPM limits (``Model.limits``) as local token buckets: pure, no I/O.

Why local: a provider's quota is per key, and overrunning it costs a 429 round
trip (and, with retries, more). Each sidecar keeps its own buckets, so with N
pods the pod-level limits should be the provider's divided by N (the operator
can compile that); there is no cross-pod coordination on the request path.

Semantics:
* RPM: one token per upstream model chosen for a request (its retries on the
  same model are not charged again); refills at rpm/60 per second, burst rpm.
* TPM: a request reserves its estimated input tokens (ceil(body bytes / 4))
  when the model is chosen; when the request finishes, the reservation is
  settled against the reported input + output tokens, so the bucket may go
  below zero and later requests wait for it. A request larger than the whole
  bucket waits for a full bucket (it would otherwise never pass).
* A model over its limit is skipped like an open circuit
  (``x-switchman-tried: model:rate-limited``), so fallbacks answer; when no
  candidate is left the client gets 429 with ``Retry-After`` (whole seconds
  until the soonest candidate has room) in the API's error shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchman_protocol.v1 import routes_pb2

__all__ = ["RateLimiter", "TokenBucket"]


class TokenBucket:
    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` (capped at the capacity) is available; 0 = now."""
        self._refill(now)
        need = min(amount, self.capacity)
        if self.level >= need:
            return 0.0
        return (need - self.level) / self.rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount

    def adjust(self, delta: float, now: float) -> None:
        """Charge ``delta`` more (negative: give back), never above capacity."""
        self._refill(now)
        self.level = min(self.capacity, self.level - delta)


@dataclass(slots=True)
class _Limits:
    rpm: int
    tpm: int
    requests: TokenBucket | None
    tokens: TokenBucket | None


class RateLimiter:
    """One per process; buckets by model name, kept across table reloads
    (rebuilt only when a model's limits change)."""

    def __init__(self) -> None:
        self._models: dict[str, _Limits] = {}

    def _limits(self, model: routes_pb2.Model, now: float) -> _Limits | None:
        lim = model.limits
        rpm, tpm = lim.rpm, lim.tpm
        if not rpm and not tpm:
            return None
        entry = self._models.get(model.name)
        if entry is None or entry.rpm != rpm or entry.tpm != tpm:
            entry = _Limits(
                rpm,
                tpm,
                TokenBucket(rpm, now) if rpm else None,
                TokenBucket(tpm, now) if tpm else None,
            )
            self._models[model.name] = entry
        return entry

    def acquire(self, model: routes_pb2.Model, tokens: int, now: float) -> float:
        """Charges the model for one request of ``tokens`` estimated tokens and
        returns 0.0, or charges nothing and returns the seconds to wait."""
        if not model.HasField("limits"):
            return 0.0
        entry = self._limits(model, now)
        if entry is None:
            return 0.0
        wait = 0.0
        if entry.requests is not None:
            wait = entry.requests.wait_s(1, now)
        if entry.tokens is not None:
            wait = max(wait, entry.tokens.wait_s(tokens, now))
        if wait > 0:
            return wait
        if entry.requests is not None:
            entry.requests.take(1, now)
        if entry.tokens is not None:
            entry.tokens.take(tokens, now)
        return 0.0

    def settle(self, name: str, reserved: int, actual: int, now: float) -> None:
        """The request on ``name`` used ``actual`` tokens where ``reserved`` were taken."""
        entry = self._models.get(name)
        if entry is not None and entry.tokens is not None and actual != reserved:
            entry.tokens.adjust(actual - reserved, now)
