"""The sidecar's one settings object, read once at start-up (env + CLI)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SidecarSettings"]


@dataclass(frozen=True, slots=True)
class SidecarSettings:
    host: str = "127.0.0.1"
    """Loopback only: the app in the same pod is the only client."""
    port: int = 4000
    admin_host: str = "127.0.0.1"
    admin_port: int = 15000
    """Envoy's admin port, so operators find it where they expect."""
    config: Path | None = None
    """Standalone route table (YAML); reloaded when its mtime changes."""
    reload_interval_s: float = 2.0
    operator_address: str = ""
    """host:port of the operator's discovery service; empty = standalone."""
    max_body_bytes: int = 8 * 1024 * 1024
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 75.0
    forward_header_prefixes: tuple[str, ...] = ()
    """Client headers with these prefixes are passed upstream (e.g. ``x-fake-`` in tests)."""
    access_log: bool = True
    """One JSON line per request (no prompt text)."""
    log_usage: bool = True
    """Standalone mode: also log each usage record."""
    sidecar_id: str = ""
    """"namespace/pod"; identifies the sidecar to the operator."""
    native_lane: bool = True
    """Serve the common request in the compiled module's own thread (``lane.py``);
    off, or without the compiled module, the Python server takes every request."""
    lane_settle_ms: float = 2.0
    """How long the lane's finished requests may wait to be settled in Python (usage
    record, metrics, log line): one event-loop wake-up per batch (of up to 64), not
    per request. Longer batches make longer bursts of Python that requests wait
    behind (10 ms doubled the p99 at 1,000 RPS; docs/sidecar.md, "Tenth pass")."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> SidecarSettings:
        e = os.environ if env is None else env
        d = cls()

        def flag(name: str, default: bool) -> bool:
            raw = e.get(name)
            return default if raw is None else raw.lower() in ("1", "true", "yes", "on")

        config = e.get("SWITCHMAN_CONFIG")
        prefixes = e.get("SWITCHMAN_FORWARD_HEADER_PREFIXES", "")
        values: dict[str, object] = {
            "host": e.get("SWITCHMAN_HOST", d.host),
            "port": int(e.get("SWITCHMAN_PORT", d.port)),
            "admin_host": e.get("SWITCHMAN_ADMIN_HOST", d.admin_host),
            "admin_port": int(e.get("SWITCHMAN_ADMIN_PORT", d.admin_port)),
            "config": Path(config) if config else None,
            "reload_interval_s": float(e.get("SWITCHMAN_RELOAD_INTERVAL_S", d.reload_interval_s)),
            "operator_address": e.get("SWITCHMAN_OPERATOR_ADDRESS", ""),
            "max_body_bytes": int(e.get("SWITCHMAN_MAX_BODY_BYTES", d.max_body_bytes)),
            "forward_header_prefixes": tuple(
                p.strip().lower() for p in prefixes.split(",") if p.strip()
            ),
            "access_log": flag("SWITCHMAN_ACCESS_LOG", d.access_log),
            "log_usage": flag("SWITCHMAN_LOG_USAGE", d.log_usage),
            "sidecar_id": e.get("SWITCHMAN_SIDECAR_ID", ""),
            "native_lane": flag("SWITCHMAN_NATIVE_LANE", d.native_lane),
            "lane_settle_ms": float(e.get("SWITCHMAN_LANE_SETTLE_MS", d.lane_settle_ms)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
