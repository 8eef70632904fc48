"""Prometheus metrics on the admin port. A registry per process (no globals),
and labelled children cached so the hot path does one dict lookup."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "switchman_requests_total",
            "Requests by API, logical model, provider and outcome.",
            ["api", "model", "provider", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "switchman_request_duration_seconds",
            "Time from request to last byte, by API and model.",
            ["api", "model"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.tokens = Counter(
            "switchman_tokens_total",
            "Tokens by model and kind (input, cached_input, output, reasoning).",
            ["model", "kind"],
            registry=self.registry,
        )
        self.cost = Counter(
            "switchman_cost_usd_total", "US dollars by model.", ["model"], registry=self.registry
        )
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
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}

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
        child = self._children.get(key)
        if child is None:
            child = (
                self.requests.labels(api, model, provider, outcome),
                self.latency.labels(api, model),
                self.tokens.labels(model, "input"),
                self.tokens.labels(model, "cached_input"),
                self.tokens.labels(model, "output"),
                self.tokens.labels(model, "reasoning"),
                self.cost.labels(model),
            )
            self._children[key] = child
        req, lat, t_in, t_cached, t_out, t_reason, c = child
        req.inc()
        lat.observe(seconds)
        if tokens[0]:
            t_in.inc(tokens[0])
            t_cached.inc(tokens[1])
            t_out.inc(tokens[2])
            t_reason.inc(tokens[3])
        if cost:
            c.inc(cost)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
