"""The admin port (Envoy-style): /healthz, /readyz, /metrics, /config_dump,
/explain. Never on the application port, never with credentials in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from google.protobuf import json_format

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.compiled import COMPILED
from switchman_sidecar.http.server import Request, ResponseWriter
from switchman_sidecar.pipeline import Pipeline
from switchman_sidecar.routing import RouteRequest

__all__ = ["AdminApp", "redacted_table"]

REDACTED = "[redacted]"


def redacted_table(table: routes_pb2.RouteTable) -> dict[str, Any]:
    """The table as JSON with every credential value replaced (the secret reference stays)."""
    copy = routes_pb2.RouteTable()
    copy.CopyFrom(table)
    for model in copy.models:
        if model.credential.api_key:
            model.credential.api_key = REDACTED
    return json_format.MessageToDict(copy, preserving_proto_field_name=True)


class AdminApp:
    def __init__(
        self,
        pipeline: Pipeline,
        status: Callable[[], dict[str, Any]] | None = None,
        lane: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.status = status
        """Extra status (the operator client's), shown in /readyz and /config_dump."""
        self.lane = lane
        """The native lane's counters and routes (lane.py), shown in /config_dump."""

    async def __call__(self, req: Request, w: ResponseWriter) -> None:
        p = self.pipeline
        json_ct = [("content-type", "application/json")]
        if req.path == "/healthz":
            w.send(200, [("content-type", "text/plain")], b"ok\n")
        elif req.path == "/readyz":
            ready = p.store.current is not None
            body = {"ready": ready, "table_version": p.store.version}
            if self.status is not None:
                body["control"] = self.status()
            w.send_json(200 if ready else 503, body)
        elif req.path == "/metrics":
            w.send(200, [("content-type", "text/plain; version=0.0.4")], p.metrics.render())
        elif req.path == "/config_dump":
            current = p.store.current
            dump: dict[str, Any] = {
                "settings": {
                    "port": p.settings.port,
                    "admin_port": p.settings.admin_port,
                    "config": str(p.settings.config) if p.settings.config else None,
                    "operator": bool(p.settings.operator_address),
                    "compiled_hot_paths": COMPILED,
                },
                "route_table": redacted_table(current.table) if current else None,
                "applied_at": current.applied_at if current else None,
                "tables_applied": p.store.applied,
                "tables_rejected": p.store.rejected,
                "last_rejection": p.store.last_error or None,
                "circuit_breakers": p.store.breakers.snapshot(),
                "native_lane": self.lane() if self.lane is not None else None,
            }
            if self.status is not None:
                dump["control"] = self.status()
            w.send(200, json_ct, orjson.dumps(dump, option=orjson.OPT_INDENT_2))
        elif req.path == "/explain":
            self._explain(req, w)
        else:
            w.send_json(404, {"error": {"message": "unknown admin path", "type": "not_found"}})

    def _explain(self, req: Request, w: ResponseWriter) -> None:
        """What the router would decide for a model (and optional prompt), without sending."""
        current = self.pipeline.store.current
        if current is None:
            w.send_json(503, {"error": {"message": "no route table yet", "type": "not_ready"}})
            return
        q = {k: v[-1] for k, v in parse_qs(req.query).items()}
        prompt = q.get("prompt", "")
        decision = current.router.decide(
            RouteRequest(
                model=q.get("model", ""),
                api=q.get("api", "chat"),
                prompt_text=prompt,
                input_tokens=(len(prompt) + 3) // 4,
            )
        )
        w.send_json(
            200,
            {
                "candidates": decision.candidates,
                "reason": decision.reason,
                "strategy": decision.strategy,
                "rule": decision.rule,
                "score": decision.score,
                "task_kind": decision.task_kind,
                "reject": decision.reject,
                "circuit_breakers": {
                    name: self.pipeline.store.breakers.get(current.models[name].endpoint).state
                    for name in decision.candidates
                    if name in current.models
                },
            },
        )
