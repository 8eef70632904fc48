"""The webhook as one long-running coroutine: certificates, template, HTTPS server.

``run_webhook`` is what both entry points run: the operator process (as one
of its ``extra`` tasks, see ``operator_hook``) and ``python -m
switchman_operator.webhook`` (local runs, e2e tests). Two loops beside the
server: the template/values files are re-read every ``reload_interval``, and
the certificate source is asked for a renewal every minute (or sooner for
short test lifetimes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .kubeapi import WebhookKube
from .server import WebhookServer
from .serving import FileCertificates, OperatorCertificates, ServingContext
from .settings import WebhookSettings
from .source import InjectionSource

__all__ = ["certificate_source", "run_webhook"]

log = logging.getLogger("switchman.webhook")


def certificate_source(
    settings: WebhookSettings, api_client: Any
) -> OperatorCertificates | FileCertificates:
    if settings.cert_mode == "files":
        return FileCertificates(settings.cert_dir)
    return OperatorCertificates(
        WebhookKube(api_client),
        settings.ca_secret,
        settings.hosts,
        settings.config_name,
        settings.cert_validity,
        settings.ca_validity,
    )


async def run_webhook(
    settings: WebhookSettings,
    api_client: Any,
    *,
    on_started: Callable[[int], Awaitable[None] | None] | None = None,
    certs: OperatorCertificates | FileCertificates | None = None,
) -> None:
    """Serve until cancelled. Start-up errors (no template, no certificate) raise."""
    source = InjectionSource(settings.template_file, settings.values_file)
    source.poll()
    if source.current is None:
        raise RuntimeError(f"no usable injection template: {source.last_error}")
    certs = certs or certificate_source(settings, api_client)
    serving = ServingContext()
    tls = await certs.refresh()
    if tls is None:  # pragma: no cover - a fresh source always has a certificate
        raise RuntimeError("no webhook certificate")
    serving.load(tls)
    grpc_ca = settings.grpc_ca_file.read_text() if settings.grpc_ca_file else None

    def operator_ca() -> str | None:
        if grpc_ca is not None:
            return grpc_ca
        return serving.current.ca_pem.decode() if serving.current else None

    server = WebhookServer(source, serving, operator_ca, settings.operator_namespace)
    port = await server.start(settings.address)
    log.info("admission webhook listening on port %d", port)
    if on_started is not None:
        maybe = on_started(port)
        if maybe is not None:
            await maybe
    cert_check = min(60.0, max(0.5, settings.cert_validity / 20))
    loop = asyncio.get_running_loop()
    next_cert = loop.time() + cert_check
    try:
        while True:
            await asyncio.sleep(min(settings.reload_interval, cert_check))
            source.poll()
            if loop.time() >= next_cert:
                next_cert = loop.time() + cert_check
                try:
                    renewed = await certs.refresh()
                except Exception:
                    log.exception("webhook certificate renewal failed; retrying")
                    continue
                if renewed is not None:
                    serving.load(renewed)
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
