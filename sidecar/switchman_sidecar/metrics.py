"""Prometheus metrics on the admin port. A registry per process (no globals).

The per-request series (requests, latency histogram, tokens, cost) are not
prometheus_client metric objects: each ``inc``/``observe`` of those takes a
lock, and a request touched seven of them. Here a request adds to one plain
``_Series`` (one dict lookup, a few integer additions; the event loop is the
only writer) and a collector turns the series into the same metric families
when /metrics is scraped. Rare events (failures, table changes) keep ordinary
prometheus_client metrics.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["BUCKETS", "Metrics"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_LE: list[str] = [floatToGoString(b) for b in BUCKETS]  # type: ignore[no-untyped-call]
MAX_SERIES = 4096
_TOKEN_KINDS = ("input", "cached_input", "output", "reasoning")


class _Series:
    """Everything one (api, model, provider, outcome) combination has added up."""

    __slots__ = ("buckets", "cached", "cost", "count", "input", "output", "reasoning", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)
        """Non-cumulative counts per bucket; the last one is +Inf."""
        self.input = 0
        self.cached = 0
        self.output = 0
        self.reasoning = 0
        self.cost = 0.0

    def add_usage(self, other: _Series) -> None:
        """Adds ``other``'s tokens and cost (what the per-model families report)."""
        self.input += other.input
        self.cached += other.cached
        self.output += other.output
        self.reasoning += other.reasoning
        self.cost += other.cost


class _RequestCollector(Collector):
    def __init__(
        self,
        series: dict[tuple[str, str, str, str], _Series],
        attempts: dict[tuple[str, str], _Series],
    ) -> None:
        self._series = series
        self._attempts = attempts

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        requests, latency, tokens, cost, attempts = self._families()
        per_latency: dict[tuple[str, str], _Series] = {}
        per_model: dict[str, _Series] = {}
        for (model, kind), s in list(self._attempts.items()):
            attempts.add_metric([model, kind], s.count)
            per_model.setdefault(model, _Series()).add_usage(s)
        for (api, model, provider, outcome), s in list(self._series.items()):
            requests.add_metric([api, model, provider, outcome], s.count)
            lat = per_latency.setdefault((api, model), _Series())
            lat.count += s.count
            lat.seconds += s.seconds
            lat.buckets = [a + b for a, b in zip(lat.buckets, s.buckets, strict=True)]
            per_model.setdefault(model, _Series()).add_usage(s)
        for (api, model), s in per_latency.items():
            cumulative, buckets = 0, []
            for le, n in zip(_LE, s.buckets, strict=False):
                cumulative += n
                buckets.append((le, float(cumulative)))
            buckets.append(("+Inf", float(s.count)))
            latency.add_metric([api, model], buckets, s.seconds)
        for model, s in per_model.items():
            values = (s.input, s.cached, s.output, s.reasoning)
            for kind, value in zip(_TOKEN_KINDS, values, strict=True):
                tokens.add_metric([model, kind], value)
            cost.add_metric([model], s.cost)
        return iter((requests, latency, tokens, cost, attempts))

    @staticmethod
    def _families() -> tuple[
        CounterMetricFamily,
        HistogramMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
    ]:
        return (
            CounterMetricFamily(
                "switchman_requests",
                "Requests by API, logical model, provider and outcome.",
                labels=["api", "model", "provider", "outcome"],
            ),
            HistogramMetricFamily(
                "switchman_request_duration_seconds",
                "Time from request to last byte, by API and model.",
                labels=["api", "model"],
            ),
            CounterMetricFamily(
                "switchman_tokens",
                "Tokens by model and kind (input, cached_input, output, reasoning).",
                labels=["model", "kind"],
            ),
            CounterMetricFamily(
                "switchman_cost_usd",
                "US dollars by model (requests' answers and every extra attempt).",
                labels=["model"],
            ),
            CounterMetricFamily(
                "switchman_extra_attempts",
                "Paid calls besides a request's answer, by model and kind (cascade, "
                "cascade-check, ensemble, ensemble-judge, shadow); their tokens and "
                "cost are in switchman_tokens and switchman_cost_usd.",
                labels=["model", "kind"],
            ),
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._series: dict[tuple[str, str, str, str], _Series] = {}
        self._attempts: dict[tuple[str, str], _Series] = {}
        self.registry.register(_RequestCollector(self._series, self._attempts))
        self.upstream_failures = Counter(
            "switchman_upstream_failures_total",
            "Failed upstream attempts by model and cause.",
            ["model", "cause"],
            registry=self.registry,
        )
        self.table_version = Gauge(
            "switchman_route_table_applied",
            "1 for the route table version in force.",
            ["version"],
            registry=self.registry,
        )
        self.table_rejections = Counter(
            "switchman_route_table_rejections_total",
            "Rejected route tables.",
            registry=self.registry,
        )
        self.pii_entities = Counter(
            "switchman_pii_entities_total",
            "Personal data found in requests, by entity type (counts only, never values).",
            ["entity"],
            registry=self.registry,
        )
        self._pii_children: dict[str, Any] = {}

    def attempt(
        self, model: str, kind: str, tokens: tuple[int, int, int, int], cost: float
    ) -> None:
        """A paid call that is not a request's answer (a usage record of its own)."""
        s = self._attempts.get((model, kind))
        if s is None:
            if len(self._attempts) >= MAX_SERIES:
                model = "_other"
            s = self._attempts.setdefault((model, kind), _Series())
        s.count += 1
        s.input += tokens[0]
        s.cached += tokens[1]
        s.output += tokens[2]
        s.reasoning += tokens[3]
        s.cost += cost

    def pii(self, counts: dict[str, int]) -> None:
        # The labelled child is looked up once per entity type (``labels`` takes a lock
        # and validates the label each call); entity types are the table's closed set.
        children = self._pii_children
        for entity, n in counts.items():
            child = children.get(entity)
            if child is None:
                child = children.setdefault(entity, self.pii_entities.labels(entity))
            child.inc(n)

    def observe(
        self,
        api: str,
        model: str,
        provider: str,
        outcome: str,
        seconds: float,
        tokens: tuple[int, int, int, int],
        cost: float,
    ) -> None:
        key = (api, model, provider, outcome)
        s = self._series.get(key)
        if s is None:
            if len(self._series) >= MAX_SERIES:
                # Rejected requests carry the model the client typed: bound the cardinality.
                key = (api, "_other", provider, outcome)
            s = self._series.get(key) or self._series.setdefault(key, _Series())
        s.count += 1
        s.seconds += seconds
        s.buckets[bisect_left(BUCKETS, seconds)] += 1
        if tokens[0] or tokens[2]:
            s.input += tokens[0]
            s.cached += tokens[1]
            s.output += tokens[2]
            s.reasoning += tokens[3]
        s.cost += cost

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
