"""The serving certificate: where it comes from, and swapping it without a restart.

``ServingContext`` is one ``ssl.SSLContext`` for the life of the server;
loading a new chain into it changes what new connections are offered, while
open connections finish with the old one. The key only touches disk in a
private directory because ``load_cert_chain`` reads files.

Two sources, one interface (``refresh`` → whether anything changed):
* ``OperatorCertificates``: a CA kept in a Secret (created once, shared by
  every replica; a lost create/update race re-reads the winner), a serving
  certificate per replica renewed at two thirds of its life, and the webhook
  configuration's caBundle patched to the CA.
* ``FileCertificates``: tls.crt/tls.key/ca.crt mounted from a Secret that
  cert-manager (or the user) manages; re-read when the files change.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import ssl
import tempfile
from pathlib import Path

from ..tls import ServerTls
from .certs import CertificateAuthority, issue, make_ca, renew_at
from .kubeapi import WebhookKube

__all__ = ["FileCertificates", "OperatorCertificates", "ServingContext"]

log = logging.getLogger("switchman.webhook")


class ServingContext:
    def __init__(self) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._dir = Path(tempfile.mkdtemp(prefix="switchman-webhook-"))
        os.chmod(self._dir, 0o700)
        self.current: ServerTls | None = None

    def load(self, tls: ServerTls) -> None:
        cert, key = self._dir / "tls.crt", self._dir / "tls.key"
        cert.write_bytes(tls.cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(tls.key_pem)
        try:
            self.context.load_cert_chain(cert, key)
        finally:
            key.unlink()
        self.current = tls


class OperatorCertificates:
    def __init__(
        self,
        kube: WebhookKube,
        ca_secret: str,
        hosts: tuple[str, ...],
        config_name: str,
        cert_validity: float,
        ca_validity: float,
    ) -> None:
        namespace, _, name = ca_secret.partition("/")
        if not namespace or not name:
            raise ValueError(f"the CA Secret must be given as namespace/name, not {ca_secret!r}")
        self.kube, self.namespace, self.name = kube, namespace, name
        self.hosts, self.config_name = hosts, config_name
        self.cert_validity, self.ca_validity = cert_validity, ca_validity
        self.ca: CertificateAuthority | None = None
        self.tls: ServerTls | None = None

    async def ensure_ca(self) -> CertificateAuthority:
        """The shared CA: read it, or make it and win the write (bounded retries)."""
        for _ in range(5):
            secret = await self.kube.read_secret(self.namespace, self.name)
            data = (secret or {}).get("data") or {}
            if data.get("ca.crt") and data.get("ca.key"):
                self.ca = CertificateAuthority(
                    base64.b64decode(data["ca.crt"]), base64.b64decode(data["ca.key"])
                )
                return self.ca
            ca = make_ca(self.ca_validity)
            rv = (secret or {}).get("metadata", {}).get("resourceVersion")
            written = await self.kube.write_secret(
                self.namespace, self.name, {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem}, rv
            )
            if written:
                log.info("created the Switchman CA in Secret %s/%s", self.namespace, self.name)
                self.ca = ca
                return ca
        raise RuntimeError(f"could not read or write the CA Secret {self.namespace}/{self.name}")

    def due(self, now: dt.datetime | None = None) -> bool:
        return self.tls is None or (now or dt.datetime.now(dt.UTC)) >= renew_at(self.tls.cert_pem)

    async def refresh(self) -> ServerTls | None:
        """A new serving certificate when none exists or renewal is due, else None."""
        if not self.due():
            return None
        ca = self.ca or await self.ensure_ca()
        self.tls = issue(ca, self.hosts, self.cert_validity)
        if self.config_name and await self.kube.set_ca_bundle(self.config_name, ca.cert_pem):
            log.info("patched caBundle of %s", self.config_name)
        log.info("issued a webhook serving certificate for %s", ", ".join(self.hosts))
        return self.tls


class FileCertificates:
    def __init__(self, cert_dir: Path) -> None:
        self.cert_dir = cert_dir
        self.tls: ServerTls | None = None

    async def refresh(self) -> ServerTls | None:
        d = self.cert_dir
        try:
            cert, key = (d / "tls.crt").read_bytes(), (d / "tls.key").read_bytes()
            ca = (d / "ca.crt").read_bytes() if (d / "ca.crt").exists() else cert
        except OSError as exc:
            if self.tls is None:
                raise
            log.error("cannot re-read the webhook certificate (keeping the current one): %s", exc)
            return None
        tls = ServerTls(cert, key, ca)
        if tls == self.tls:
            return None
        self.tls = tls
        log.info("loaded the webhook certificate from %s", d)
        return tls
