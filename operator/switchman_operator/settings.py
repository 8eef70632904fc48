"""The operator's one settings object, read from the environment once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .leader.settings import LeaderSettings
from .webhook.settings import WebhookSettings

__all__ = ["Settings"]


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return float(env.get(name, default))


@dataclass(frozen=True)
class Settings:
    #: gRPC listen address for the discovery and usage streams (TLS).
    grpc_address: str = "0.0.0.0:15010"
    #: Admin HTTP (/metrics, /healthz, /debug/*). Debug output is redacted but still
    #: describes every sidecar: keep it off public networks.
    admin_address: str = "0.0.0.0:15014"
    #: Provided server certificate (PEM); empty: make a self-signed CA at start-up.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    #: Where to write the CA of a self-signed certificate (sidecars trust this file).
    tls_ca_out: Path | None = None
    #: Names the self-signed certificate is valid for.
    tls_hosts: tuple[str, ...] = ("switchman-operator", "localhost", "127.0.0.1")
    #: Token audience sidecars must present (projected ServiceAccount token).
    audience: str = "switchman"
    #: Debounce: push after this long without changes (seconds) ...
    debounce_quiet: float = 0.1
    #: ... but no later than this after the first change of a burst (seconds).
    debounce_max: float = 1.0
    #: How often policy sync counts are written to RoutingPolicy status (seconds).
    status_interval: float = 2.0
    #: Minimum time between two BudgetState pushes to one sidecar while only the spend moves
    #: (a condition change goes out at once): a usage write to a team of 1,000 sidecars
    #: otherwise re-pushed every sidecar after every group commit (seconds).
    budget_push_interval: float = 1.0
    #: Spend-only BudgetState pushes per second this replica sends at most, on average,
    #: over all its sidecars: with more than rate x interval sidecars connected, each
    #: one's interval stretches to connected / rate (1,000 sidecars at 250/s: 4 s).
    budget_push_rate: float = 250.0
    #: How often budgets are re-evaluated without usage (period rollover), seconds.
    budget_refresh_interval: float = 60.0
    #: Kubeconfig when not running in a pod (None: in-cluster, then $KUBECONFIG).
    kubeconfig: str | None = None
    #: Namespaces to watch (empty: cluster-wide).
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    #: Identity of this replica in logs and status.
    replica: str = "switchman-operator"
    #: Operator replicas serving sidecars (SWITCHMAN_REPLICAS; the chart sets its
    #: replica count). Budget allowances are also divided by it, so the slices handed
    #: out by all replicas together never add up to more than what remains.
    replicas: int = 1
    #: The admission webhook (sidecar injection), off unless SWITCHMAN_WEBHOOK_ENABLED.
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    #: Lease-based leader election (SWITCHMAN_LEADER_ELECTION; the chart sets it when
    #: replicas > 1). Off: this replica always acts as leader.
    leader: LeaderSettings = field(default_factory=LeaderSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def path(name: str) -> Path | None:
            return Path(e[name]) if e.get(name) else None

        hosts = tuple(h for h in e.get("SWITCHMAN_TLS_HOSTS", "").split(",") if h)
        return cls(
            grpc_address=e.get("SWITCHMAN_GRPC_ADDRESS", cls.grpc_address),
            admin_address=e.get("SWITCHMAN_ADMIN_ADDRESS", cls.admin_address),
            tls_cert_file=path("SWITCHMAN_TLS_CERT"),
            tls_key_file=path("SWITCHMAN_TLS_KEY"),
            tls_ca_file=path("SWITCHMAN_TLS_CA"),
            tls_ca_out=path("SWITCHMAN_TLS_CA_OUT"),
            tls_hosts=hosts or cls.tls_hosts,
            audience=e.get("SWITCHMAN_AUDIENCE", cls.audience),
            debounce_quiet=_float(e, "SWITCHMAN_DEBOUNCE_QUIET", cls.debounce_quiet),
            debounce_max=_float(e, "SWITCHMAN_DEBOUNCE_MAX", cls.debounce_max),
            status_interval=_float(e, "SWITCHMAN_STATUS_INTERVAL", cls.status_interval),
            budget_push_interval=_float(
                e, "SWITCHMAN_BUDGET_PUSH_INTERVAL", cls.budget_push_interval
            ),
            budget_push_rate=_float(e, "SWITCHMAN_BUDGET_PUSH_RATE", cls.budget_push_rate),
            budget_refresh_interval=_float(
                e, "SWITCHMAN_BUDGET_REFRESH_INTERVAL", cls.budget_refresh_interval
            ),
            kubeconfig=e.get("KUBECONFIG") or None,
            namespaces=tuple(n for n in e.get("SWITCHMAN_NAMESPACES", "").split(",") if n),
            replica=e.get("POD_NAME") or e.get("HOSTNAME") or cls.replica,
            replicas=max(1, int(e.get("SWITCHMAN_REPLICAS", cls.replicas))),
            webhook=WebhookSettings.from_env(e),
            leader=LeaderSettings.from_env(e),
        )
