"""Settings of the sidecar's operator client, read from the environment once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ControlSettings"]

#: Where the injected pod mounts the projected ServiceAccount token (audience switchman).
DEFAULT_TOKEN_FILE = Path("/var/run/secrets/switchman/token")


@dataclass(frozen=True)
class ControlSettings:
    #: host:port of the operator's gRPC endpoint (SWITCHMAN_OPERATOR_ADDRESS).
    address: str
    #: Projected token; re-read on every connect because the kubelet rotates it.
    token_file: Path = DEFAULT_TOKEN_FILE
    #: CA bundle the operator's certificate chains to (SWITCHMAN_OPERATOR_CA).
    ca_file: Path | None = None
    #: TLS name to verify when the address is an IP or a different name.
    server_name: str = ""
    #: Plaintext gRPC (tests only; the operator always serves TLS in a cluster).
    insecure: bool = False
    #: "namespace/pod" (downward API); sent as the xDS node id and the usage sidecar_id.
    node_id: str = ""
    #: Reconnect backoff: first delay and cap (seconds), full jitter in between.
    backoff_initial: float = 0.2
    backoff_max: float = 15.0
    #: Usage: send a batch when this many records wait or after this long (seconds).
    batch_records: int = 500
    flush_interval: float = 0.2
    #: Usage records held while the operator is unreachable; beyond it the oldest
    #: unsent records are dropped and counted (memory must stay bounded).
    max_buffered_records: int = 200_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ControlSettings:
        e = os.environ if env is None else env
        ns, pod = e.get("POD_NAMESPACE", ""), e.get("POD_NAME", "")
        return cls(
            address=e["SWITCHMAN_OPERATOR_ADDRESS"],
            token_file=Path(e.get("SWITCHMAN_TOKEN_FILE", str(DEFAULT_TOKEN_FILE))),
            ca_file=Path(e["SWITCHMAN_OPERATOR_CA"]) if e.get("SWITCHMAN_OPERATOR_CA") else None,
            server_name=e.get("SWITCHMAN_OPERATOR_SERVER_NAME", ""),
            insecure=e.get("SWITCHMAN_OPERATOR_INSECURE", "") == "1",
            node_id=f"{ns}/{pod}" if ns and pod else "",
            backoff_initial=float(e.get("SWITCHMAN_BACKOFF_INITIAL", cls.backoff_initial)),
            backoff_max=float(e.get("SWITCHMAN_BACKOFF_MAX", cls.backoff_max)),
            flush_interval=float(e.get("SWITCHMAN_USAGE_FLUSH", cls.flush_interval)),
        )
