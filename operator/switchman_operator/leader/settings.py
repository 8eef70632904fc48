"""The leader-election settings group (``Settings.leader``), read from the environment once."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from .decide import Timing

__all__ = ["LeaderSettings"]


def _flag(raw: str | None) -> bool:
    return raw is not None and raw.strip().lower() in ("1", "true", "yes", "on")


def _identity(env: Mapping[str, str]) -> str:
    """Pod name plus a random suffix: a restarted container (same pod name) is a new holder."""
    base = env.get("POD_NAME") or env.get("HOSTNAME") or "switchman-operator"
    return f"{base}_{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LeaderSettings:
    #: Off: this process is the only replica and always acts as leader. The chart
    #: turns it on when ``operator.replicas > 1``.
    enabled: bool = False
    #: The coordination.k8s.io/v1 Lease, by name, in ``lease_namespace``.
    lease_name: str = "switchman-operator"
    #: Default: the pod's own namespace (downward API POD_NAMESPACE), else "default".
    lease_namespace: str = "default"
    #: This candidate's holderIdentity.
    identity: str = field(default_factory=lambda: _identity(os.environ))
    #: A candidate takes over this long after it last saw the Lease change.
    lease_duration_seconds: float = 15.0
    #: The leader stops writing status this long after its last successful renewal.
    renew_deadline_seconds: float = 10.0
    #: Renewal / polling interval.
    retry_period_seconds: float = 2.0

    @property
    def timing(self) -> Timing:
        """Validated (retry < deadline < duration); raises ValueError otherwise."""
        return Timing(
            self.lease_duration_seconds, self.renew_deadline_seconds, self.retry_period_seconds
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LeaderSettings:
        e = os.environ if env is None else env
        return cls(
            enabled=_flag(e.get("SWITCHMAN_LEADER_ELECTION")),
            lease_name=e.get("SWITCHMAN_LEADER_ELECTION_LEASE") or cls.lease_name,
            lease_namespace=(
                e.get("SWITCHMAN_LEADER_ELECTION_NAMESPACE")
                or e.get("POD_NAMESPACE")
                or cls.lease_namespace
            ),
            identity=_identity(e),
            lease_duration_seconds=float(
                e.get("SWITCHMAN_LEASE_DURATION_SECONDS", cls.lease_duration_seconds)
            ),
            renew_deadline_seconds=float(
                e.get("SWITCHMAN_RENEW_DEADLINE_SECONDS", cls.renew_deadline_seconds)
            ),
            retry_period_seconds=float(
                e.get("SWITCHMAN_RETRY_PERIOD_SECONDS", cls.retry_period_seconds)
            ),
        )
