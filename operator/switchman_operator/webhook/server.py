"""The HTTPS admission endpoint (aiohttp, already in the operator as kopf's client).

Two paths, one per webhook in the MutatingWebhookConfiguration, so the API
server's namespaceSelector tells us whether the namespace is labelled for
injection and no Namespace is ever read:
* ``/inject``: namespaces not labelled; only pods annotated ``inject: "true"``;
* ``/inject/namespace``: namespaces labelled ``switchman.io/injection=enabled``.
``/healthz`` is liveness; ``/readyz`` is ready once a template and a
certificate are loaded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from aiohttp import web

from .admission import ReviewError, review
from .serving import ServingContext
from .source import InjectionSource

__all__ = ["WebhookServer"]

log = logging.getLogger("switchman.webhook")

MAX_REVIEW_BYTES = 8 * 1024 * 1024  # pods with large inline configs still fit


class WebhookServer:
    def __init__(
        self,
        source: InjectionSource,
        serving: ServingContext,
        operator_ca: Callable[[], str | None],
        operator_namespace: str,
    ) -> None:
        self.source = source
        self.serving = serving
        self.operator_ca = operator_ca
        self.operator_namespace = operator_namespace
        self.counts: dict[str, int] = {}
        app = web.Application(client_max_size=MAX_REVIEW_BYTES)
        app.router.add_post("/inject", self._inject_pod)
        app.router.add_post("/inject/namespace", self._inject_namespace)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        self._site: web.TCPSite | None = None

    async def start(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        await self._runner.setup()
        self._site = web.TCPSite(
            self._runner, host or "0.0.0.0", int(port), ssl_context=self.serving.context
        )
        await self._site.start()
        server = self._site._server
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else int(port)

    async def stop(self) -> None:
        await self._runner.cleanup()

    @property
    def ready(self) -> bool:
        return self.source.current is not None and self.serving.current is not None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        body = {
            "ready": self.ready,
            "templateGeneration": self.source.generation,
            "templateError": self.source.last_error or None,
            "reviews": self.counts,
        }
        return web.json_response(body, status=200 if self.ready else 503)

    async def _inject_pod(self, request: web.Request) -> web.Response:
        return await self._review(request, namespace_enabled=False)

    async def _inject_namespace(self, request: web.Request) -> web.Response:
        return await self._review(request, namespace_enabled=True)

    async def _review(self, request: web.Request, *, namespace_enabled: bool) -> web.Response:
        loaded = self.source.current
        if loaded is None:
            # The API server applies the configured failurePolicy.
            return web.json_response({"error": "no injection template loaded"}, status=503)
        try:
            body = json.loads(await request.read())
            reviewed = review(
                body,
                namespace_enabled=namespace_enabled,
                template=loaded.template,
                values=loaded.values,
                operator_ca=self.operator_ca(),
                operator_namespace=self.operator_namespace,
            )
        except (ValueError, ReviewError) as exc:
            return web.json_response({"error": f"bad AdmissionReview: {exc}"}, status=400)
        self.counts[reviewed.verdict] = self.counts.get(reviewed.verdict, 0) + 1
        if reviewed.verdict != "ignored":
            log.info("pod %s: %s (%s)", reviewed.pod, reviewed.verdict, reviewed.reason)
        return web.json_response(reviewed.response)
