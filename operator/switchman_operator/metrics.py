"""Prometheus metrics of the operator, in one registry object passed down.

No module-level collectors: tests and the benchmark start several operators in
one process, and each needs its own counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["OperatorMetrics"]


@dataclass
class OperatorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.connected = Gauge(
            "switchman_connected_sidecars", "Sidecars with an open discovery stream.", registry=r
        )
        self.pushes = Counter(
            "switchman_pushes_total", "Discovery responses sent.", ["type"], registry=r
        )
        self.nacks = Counter(
            "switchman_nacks_total",
            "Discovery responses rejected by sidecars.",
            ["type"],
            registry=r,
        )
        self.push_latency = Histogram(
            "switchman_push_ack_seconds",
            "From sending a response to its ACK or NACK.",
            ["type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.usage_records = Counter(
            "switchman_usage_records_counted_total",
            "Usage records counted into TeamBudget status (duplicates excluded).",
            registry=r,
        )
        self.usage_batches = Counter(
            "switchman_usage_batches_total",
            "Usage batches received, by result (counted, duplicate, uncharged, refused).",
            ["result"],
            registry=r,
        )
        self.usage_commit_batches = Histogram(
            "switchman_usage_commit_batches",
            "Usage batches counted by one TeamBudget status write (group commit size).",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
            registry=r,
        )
        self.usage_commit_seconds = Histogram(
            "switchman_usage_commit_seconds",
            "One group commit: read the TeamBudget, apply the batches, write its status.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.status_conflicts = Counter(
            "switchman_status_patch_conflicts_total",
            "Status writes refused with 409 (re-read and retried).",
            registry=r,
        )
        self.auth_failures = Counter(
            "switchman_stream_auth_failures_total",
            "Streams refused because the token or the pod did not check out.",
            registry=r,
        )
        self.leader = Gauge(
            "switchman_leader",
            "1 while this replica holds the leader Lease (always 1 without election).",
            registry=r,
        )
        self.status_writes = Counter(
            "switchman_status_writes_total",
            "Condition/sync-count status patches written (leader only).",
            registry=r,
        )

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
