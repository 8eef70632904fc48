"""The webhook's settings group, read from the environment once at start-up.

In the operator process it is one field of the operator's ``Settings``
(``settings.webhook``); ``python -m switchman_operator.webhook`` reads it alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WebhookSettings"]

_DAY = 86400.0


def _flag(raw: str | None, default: bool) -> bool:
    return default if raw is None else raw.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class WebhookSettings:
    #: Serve the admission webhook from this process (the chart turns it on).
    enabled: bool = False
    #: HTTPS listen address; 9443 because the pod runs as non-root.
    address: str = "0.0.0.0:9443"
    #: The injection template and values, mounted from the chart's ConfigMap.
    template_file: Path = Path("/etc/switchman/injection/template.yaml")
    values_file: Path = Path("/etc/switchman/injection/values.json")
    #: How often the mounted files are re-read (seconds); the kubelet updates
    #: ConfigMap volumes within about a minute, so a few seconds is plenty.
    reload_interval: float = 2.0
    #: ``operator``: a CA kept in ``ca_secret`` issues the serving certificate,
    #: renewed in-process, and the webhook configuration's caBundle is patched.
    #: ``files``: tls.crt/tls.key/ca.crt in ``cert_dir`` (cert-manager or an
    #: existing Secret), re-read when they change.
    cert_mode: str = "operator"
    cert_dir: Path = Path("/etc/switchman/webhook-tls")
    #: "namespace/name" of the Secret holding the CA (operator mode).
    ca_secret: str = ""
    #: Names the serving certificate is valid for (Service DNS names or IPs).
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    #: MutatingWebhookConfiguration whose caBundle to keep current ("" = none).
    config_name: str = ""
    #: Serving certificate lifetime (seconds); renewed when two thirds have passed.
    cert_validity: float = 30 * _DAY
    #: CA lifetime (seconds). The CA also signs the gRPC certificate that injected
    #: sidecars verify, so it is long-lived; see docs/install.md for rotating it.
    ca_validity: float = 3650 * _DAY
    #: The operator's own namespace, never injected (downward API POD_NAMESPACE).
    operator_namespace: str = ""
    #: CA PEM of the operator's gRPC certificate when it is not the webhook CA
    #: (SWITCHMAN_TLS_CA); injected pods trust it.
    grpc_ca_file: Path | None = None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, enabled: bool = False
    ) -> WebhookSettings:
        e = os.environ if env is None else env
        d = cls()
        hosts = tuple(
            h.strip() for h in e.get("SWITCHMAN_WEBHOOK_HOSTS", "").split(",") if h.strip()
        )
        mode = e.get("SWITCHMAN_WEBHOOK_CERT_MODE", d.cert_mode)
        if mode not in ("operator", "files"):
            raise ValueError(f"SWITCHMAN_WEBHOOK_CERT_MODE must be operator or files, not {mode!r}")
        return cls(
            enabled=_flag(e.get("SWITCHMAN_WEBHOOK_ENABLED"), enabled),
            address=e.get("SWITCHMAN_WEBHOOK_ADDRESS", d.address),
            template_file=Path(e.get("SWITCHMAN_WEBHOOK_TEMPLATE", str(d.template_file))),
            values_file=Path(e.get("SWITCHMAN_WEBHOOK_VALUES", str(d.values_file))),
            reload_interval=float(e.get("SWITCHMAN_WEBHOOK_RELOAD_INTERVAL", d.reload_interval)),
            cert_mode=mode,
            cert_dir=Path(e.get("SWITCHMAN_WEBHOOK_CERT_DIR", str(d.cert_dir))),
            ca_secret=e.get("SWITCHMAN_WEBHOOK_CA_SECRET", ""),
            hosts=hosts or d.hosts,
            config_name=e.get("SWITCHMAN_WEBHOOK_CONFIG", ""),
            cert_validity=float(e.get("SWITCHMAN_WEBHOOK_CERT_VALIDITY", d.cert_validity)),
            ca_validity=float(e.get("SWITCHMAN_WEBHOOK_CA_VALIDITY", d.ca_validity)),
            operator_namespace=e.get("POD_NAMESPACE", ""),
            grpc_ca_file=Path(e["SWITCHMAN_TLS_CA"]) if e.get("SWITCHMAN_TLS_CA") else None,
        )
