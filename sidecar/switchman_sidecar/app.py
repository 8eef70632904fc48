"""The application-facing HTTP handler: path dispatch, body parsing, errors,
and the one place that guarantees a usage record per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import orjson

from switchman_protocol.v1 import usage_pb2
from switchman_sidecar.api_chat import Frontend, OpenAIFrontend, serve_chat, validate_chat
from switchman_sidecar.api_messages import (
    AnthropicFrontend,
    anthropic_to_openai_request,
    validate_messages,
)
from switchman_sidecar.api_passthrough import (
    serve_embeddings,
    serve_responses,
    validate_embeddings,
    validate_responses,
)
from switchman_sidecar.feedback import FEEDBACK_PATHS, FeedbackLog
from switchman_sidecar.http.server import Request, ResponseWriter
from switchman_sidecar.logbuf import LineBuffer
from switchman_sidecar.pipeline import OUTCOMES, ApiError, Exchange, Pipeline
from switchman_sidecar.table import PROVIDER_NAMES
from switchman_sidecar.usage import Usage

__all__ = ["AccessLog", "App"]

log = logging.getLogger("switchman.app")

_ROUTES = {
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/messages": "messages",
    "/v1/embeddings": "embeddings",
    "/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/responses": "responses",
}
_NO_USAGE = Usage()
_OPENAI = OpenAIFrontend()
_ANTHROPIC = AnthropicFrontend()


class AccessLog:
    """One JSON line per request: the decision, the usage record's numbers (so a
    request needs no second "usage" line), never prompt text.

    Lines go through a ``LineBuffer`` (batched writes, off the request path).
    """

    def __init__(self, stream: TextIO | LineBuffer | None = None) -> None:
        self.out = stream if isinstance(stream, LineBuffer) else LineBuffer(stream)

    def __call__(self, ex: Exchange) -> None:
        u = ex.usage or _NO_USAGE
        decision = ex.decision
        elapsed = ex.elapsed or time.perf_counter() - ex.started
        line = {
            "ts": int(time.time() * 1000) / 1000,
            "msg": "request",
            "request_id": ex.request_id,
            "api": ex.api,
            "status": ex.status,
            "team": ex.table.team if ex.table is not None else None,
            "requested": ex.requested,
            "model": ex.facts.name if ex.facts else None,
            "provider": ex.provider or None,
            "reason": decision.reason if decision else None,
            "task_kind": decision.task_kind or None if decision else None,
            "tried": ex.tried or None,
            "fallbacks": ex.fallbacks,
            "outcome": OUTCOMES.get(ex.outcome),
            "streamed": ex.streamed,
            "input_tokens": u.input,
            "cached_input_tokens": u.cached,
            "output_tokens": u.output,
            "reasoning_tokens": u.reasoning,
            "estimated": u.estimated,
            "cost": ex.cost,
            "pii_counts": ex.redaction.counts or None if ex.redaction is not None else None,
            "latency_ms": int(elapsed * 1_000_000) / 1000,
        }
        self.out.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))


def _models_body(p: Pipeline) -> bytes:
    table = p.store.current
    data: list[dict[str, Any]] = []
    if table is not None:
        for model in table.table.models:
            data.append(_model_entry(model.name, PROVIDER_NAMES.get(model.provider, "")))
        for alias in sorted(table.table.aliases):
            data.append(_model_entry(alias, "switchman-alias", table.table.aliases[alias]))
    first = data[0]["id"] if data else None
    last = data[-1]["id"] if data else None
    return orjson.dumps(
        {"object": "list", "data": data, "has_more": False, "first_id": first, "last_id": last}
    )


def _model_entry(name: str, owner: str, target: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": name,
        "object": "model",
        "type": "model",
        "created": 0,
        "created_at": "1970-01-01T00:00:00Z",
        "display_name": name,
        "owned_by": owner,
    }
    if target:
        entry["alias_for"] = target
    return entry


class App:
    def __init__(self, pipeline: Pipeline, feedback: FeedbackLog | None = None) -> None:
        self.pipeline = pipeline
        self.feedback = feedback
        self._serve: dict[
            str, Callable[[Request, ResponseWriter, Exchange, Any], Awaitable[None]]
        ] = {
            "messages": self._messages,
            "embeddings": self._embeddings,
            "responses": self._responses,
        }

    async def __call__(self, req: Request, w: ResponseWriter) -> None:
        api = _ROUTES.get(req.path)
        if api is None:
            if req.method == "GET" and req.path in ("/v1/models", "/models"):
                w.send(200, [("content-type", "application/json")], _models_body(self.pipeline))
                return
            if self.feedback is not None and req.path in FEEDBACK_PATHS:
                await self.feedback.serve(req, w)  # routing (#6): rate an answer
                return
            err = ApiError(404, f"unknown path {req.method} {req.path[:200]}", code="unknown_url")
            w.send(404, [("content-type", "application/json")], _OPENAI.error(err))
            return
        fe: Frontend = _ANTHROPIC if api == "messages" else _OPENAI
        if req.method != "POST":
            err = ApiError(405, f"{req.path} accepts POST only", code="method_not_allowed")
            w.send(405, [("content-type", "application/json"), ("allow", "POST")], fe.error(err))
            return
        p = self.pipeline
        ex = p.new_exchange(api, req.headers)
        if req.prior is not None:
            ex.prior = req.prior  # the native lane tried it first (lane.py)
        try:
            try:
                body = orjson.loads(req.body)
            except orjson.JSONDecodeError as exc:
                raise ApiError(400, f"the request body is not valid JSON: {exc}") from exc
            if api == "chat":  # the common call, without one more coroutine in between
                await serve_chat(p, req, w, ex, validate_chat(body), _OPENAI)
            else:
                await self._serve[api](req, w, ex, body)
        except ApiError as err:
            self._fail(w, ex, err, fe)
        except Exception:
            log.exception("request failed", extra={"request_id": ex.request_id})
            self._fail(w, ex, ApiError(500, "internal error in the sidecar", "server_error"), fe)
        finally:
            ex.status = w.status
            p.finish(ex)

    def _fail(self, w: ResponseWriter, ex: Exchange, err: ApiError, fe: Frontend) -> None:
        if ex.outcome == usage_pb2.OUTCOME_REJECTED and ex.attempts:
            ex.outcome = usage_pb2.OUTCOME_UPSTREAM_ERROR
        if w.started or w.disconnected:
            return
        headers = [("content-type", "application/json"), *ex.decision_headers(), *err.headers]
        w.send(err.status, headers, fe.error(err))

    async def _messages(self, req: Request, w: ResponseWriter, ex: Exchange, body: Any) -> None:
        canonical = anthropic_to_openai_request(validate_messages(body))
        await serve_chat(self.pipeline, req, w, ex, canonical, _ANTHROPIC)

    async def _embeddings(self, req: Request, w: ResponseWriter, ex: Exchange, body: Any) -> None:
        await serve_embeddings(self.pipeline, req, w, ex, validate_embeddings(body))

    async def _responses(self, req: Request, w: ResponseWriter, ex: Exchange, body: Any) -> None:
        await serve_responses(self.pipeline, req, w, ex, validate_responses(body))
