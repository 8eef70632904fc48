"""Certificates made by the operator: a long-lived CA and short-lived serving certificates.

Pure (no I/O): the CA is kept in a Secret by ``CertificateStore`` and the
serving certificates live only in memory, one per replica, renewed when two
thirds of their lifetime have passed. The same CA signs the gRPC certificate,
so injected sidecars trust one PEM that survives operator restarts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..tls import ServerTls

__all__ = ["CertificateAuthority", "issue", "make_ca", "renew_at"]

_BACKDATE = dt.timedelta(minutes=5)  # clock skew between nodes


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    cert_pem: bytes
    key_pem: bytes


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_ca(validity_s: float, now: dt.datetime | None = None) -> CertificateAuthority:
    now = now or _now()
    start = now - _BACKDATE
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("switchman-ca")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(seconds=validity_s))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def issue(
    ca: CertificateAuthority,
    hosts: Sequence[str],
    validity_s: float,
    now: dt.datetime | None = None,
) -> ServerTls:
    """A serving certificate for ``hosts`` (DNS names or IP addresses) signed by ``ca``."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one host name")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an EC key")
    now = now or _now()
    start = now - _BACKDATE
    end = min(now + dt.timedelta(seconds=validity_s), ca_cert.not_valid_after_utc)
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ServerTls(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        ca_pem=ca.cert_pem,
    )


def renew_at(cert_pem: bytes) -> dt.datetime:
    """When to replace a certificate we issued: two thirds into its intended
    lifetime (like cert-manager), not counting the backdating for clock skew."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    start, end = cert.not_valid_before_utc + _BACKDATE, cert.not_valid_after_utc
    return start + max(end - start, dt.timedelta(0)) * 2 / 3
