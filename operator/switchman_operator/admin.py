"""Admin HTTP: /metrics, /healthz, /readyz and the debug views the CLI reads.

``/debug/proxy-status`` lists every sidecar connected to this replica;
``/debug/proxy-config?namespace=N&pod=P`` is the table that pod was last sent,
with every credential replaced by ``<redacted>`` (keys never leave through
this port). aiohttp is already here as kopf's HTTP client.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from google.protobuf import json_format

from switchman_protocol.v1 import routes_pb2

from .discovery.hub import Hub
from .metrics import OperatorMetrics

__all__ = ["AdminServer", "redacted"]

REDACTED = "<redacted>"


def redacted(table: routes_pb2.RouteTable) -> dict[str, Any]:
    copy = routes_pb2.RouteTable()
    copy.CopyFrom(table)
    for model in copy.models:
        if model.credential.api_key:
            model.credential.api_key = REDACTED
    out: dict[str, Any] = json_format.MessageToDict(copy)
    return out


class AdminServer:
    def __init__(self, hub: Hub, metrics: OperatorMetrics, replica: str) -> None:
        self.hub = hub
        self.metrics = metrics
        self.replica = replica
        self.ready = False
        self._runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/debug/proxy-status", self._proxy_status)
        app.router.add_get("/debug/proxy-config", self._proxy_config)
        return app

    async def start(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host or "0.0.0.0", int(port))
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else int(port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain")

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, request: web.Request) -> web.Response:
        return web.Response(
            text="ok" if self.ready else "starting", status=200 if self.ready else 503
        )

    async def _proxy_status(self, request: web.Request) -> web.Response:
        return web.json_response({"replica": self.replica, "sidecars": self.hub.proxy_status()})

    async def _proxy_config(self, request: web.Request) -> web.Response:
        ns, pod = request.query.get("namespace", ""), request.query.get("pod", "")
        conns = self.hub.find(ns, pod)
        if not conns:
            return web.json_response(
                {"error": f"no sidecar of pod {ns}/{pod} is connected to {self.replica}"},
                status=404,
            )
        conn = conns[-1]
        return web.json_response(
            {
                "replica": self.replica,
                "pod": pod,
                "namespace": ns,
                "table": redacted(conn.table) if conn.table is not None else None,
            }
        )
