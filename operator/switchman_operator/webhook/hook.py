"""How the operator process serves the webhook: one call from ``__main__.main``.

``prepare`` runs before the operator starts. With the webhook enabled in
operator certificate mode it also gives the gRPC server a certificate from the
same long-lived CA (unless one is provided), so the CA the webhook writes into
every injected pod is the one the sidecar needs to trust the operator, across
restarts and replicas. The gRPC server loads its certificate once: it is
issued for a year and reissued at every operator start.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..kube import load_api_client
from .certs import issue
from .service import certificate_source, run_webhook
from .serving import OperatorCertificates

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["prepare"]

_GRPC_VALIDITY_S = 365 * 86400.0

Extra = Callable[[Any], Coroutine[Any, Any, None]]


async def prepare(settings: Settings) -> tuple[Settings, list[Extra]]:
    """Settings to run the operator with, and the webhook task to run beside it."""
    ws = settings.webhook
    if not ws.enabled:
        return settings, []
    api_client = load_api_client(settings.kubeconfig)
    certs = certificate_source(ws, api_client)
    if isinstance(certs, OperatorCertificates) and settings.tls_cert_file is None:
        ca = await certs.ensure_ca()
        tls = issue(ca, list(settings.tls_hosts), _GRPC_VALIDITY_S)
        folder = Path(tempfile.mkdtemp(prefix="switchman-grpc-"))
        files = {"cert": folder / "tls.crt", "key": folder / "tls.key", "ca": folder / "ca.crt"}
        files["cert"].write_bytes(tls.cert_pem)
        fd = os.open(files["key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(tls.key_pem)
        files["ca"].write_bytes(tls.ca_pem)
        settings = dataclasses.replace(
            settings,
            tls_cert_file=files["cert"],
            tls_key_file=files["key"],
            tls_ca_file=files["ca"],
        )
    ws = dataclasses.replace(ws, grpc_ca_file=settings.tls_ca_file or ws.grpc_ca_file)
    settings = dataclasses.replace(settings, webhook=ws)

    async def webhook(_: Any) -> None:
        def started(port: int) -> None:
            print(f"switchman-operator webhook={port}", flush=True)

        await run_webhook(ws, api_client, on_started=started, certs=certs)

    return settings, [webhook]
