"""Feedback on answers: the rating API, and outcomes the sidecar observes itself.

The operator's router learner (docs/routing.md, "Learning from outcomes")
needs outcomes per (model, task kind). They come from:

* ``POST /v1/feedback`` — an application rates an answer by its request id
  (``x-switchman-request-id``): ``{"request_id": "...", "score": 0.0..1.0}``
  or ``{"request_id": "...", "thumbs": "up"|"down"}``; ``comment`` is
  accepted and ignored (free text could carry personal data and is never
  stored or sent);
* cascade escalations — a usage record with ``cascade_escalated`` is a failed
  answer of that model on that task kind (score 0);
* shadow comparisons (``shadow.py``).

Prompts never leave the pod, and neither do answers: a rating is attributed
through a bounded LRU of recent request ids → (model, task kind), filled from
the usage records the pipeline writes anyway (this class is a ``UsageSink``),
so the request path gains no work. Feedback goes to ``outputs`` (the
operator's usage reporter, which ships it in ``UsageBatch.feedback`` with the
same at-least-once, sequenced delivery as usage) and to a bounded ``recent``
list for /config_dump and tests.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import Callable
from typing import Any

import orjson

from switchman_protocol.v1 import usage_pb2
from switchman_sidecar.api_chat import openai_error
from switchman_sidecar.http.server import Request, ResponseWriter
from switchman_sidecar.pipeline import ApiError

__all__ = ["FEEDBACK_PATHS", "FeedbackLog", "parse_rating"]

log = logging.getLogger("switchman.feedback")

FEEDBACK_PATHS = frozenset({"/v1/feedback", "/feedback"})
#: Reasons of usage records that are not a request's answer (grading and judge calls).
_NOT_ANSWERS = ("cascade-check", "ensemble-judge")
_THUMBS = {"up": 1.0, "down": 0.0}


_Answer = tuple[str, str, bool]
"""A recent answer that may be rated: (model, task kind, rated). An exact tuple of
strings and a bool: the collector stops tracking it at its first pass, so the
10,000 kept answers never reach the older generations' collections (a class
instance, even with slots, would stay tracked, as tuple subclasses do)."""


def parse_rating(body: Any) -> tuple[str, float]:
    """(request id, score in [0, 1]) from a feedback body; ApiError (400) when malformed."""
    if not isinstance(body, dict):
        raise ApiError(400, "the feedback body must be a JSON object")
    rid = body.get("request_id")
    if not isinstance(rid, str) or not rid or len(rid) > 128:
        raise ApiError(
            400, "request_id must be the x-switchman-request-id of an answer", param="request_id"
        )
    score = body.get("score")
    thumbs = body.get("thumbs")
    if score is not None and thumbs is not None:
        raise ApiError(400, "give either score or thumbs, not both", param="score")
    if thumbs is not None:
        if thumbs not in _THUMBS:
            raise ApiError(400, 'thumbs must be "up" or "down"', param="thumbs")
        return rid, _THUMBS[thumbs]
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise ApiError(400, "score must be a number between 0 and 1 (or use thumbs)", param="score")
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise ApiError(400, "score must be between 0 and 1", param="score")
    return rid, float(score)


class FeedbackLog:
    """Recent answers by request id (an LRU), and the way out for feedback."""

    def __init__(self, capacity: int = 10_000, recent: int = 1_000) -> None:
        self.capacity = capacity
        self._answers: collections.OrderedDict[str, _Answer] = collections.OrderedDict()
        self.outputs: list[Callable[[usage_pb2.Feedback], None]] = []
        self.recent: collections.deque[usage_pb2.Feedback] = collections.deque(maxlen=recent)
        self._changed = asyncio.Event()

    # UsageSink: learn which model answered which request ------------------

    def submit(self, record: usage_pb2.UsageRecord) -> None:
        if record.shadow or not record.request_id or record.reason in _NOT_ANSWERS:
            return
        if record.cascade_escalated:
            self.emit(record.request_id, record.model, record.task_kind, 0.0, "cascade")
            return
        self.answered(
            record.request_id, record.model, record.task_kind, record.reason, record.outcome
        )

    def answered(
        self, request_id: str, model: str, task_kind: str, reason: str, outcome: int
    ) -> None:
        """A request's own outcome (the pipeline calls this without building a record)."""
        if not request_id or reason in _NOT_ANSWERS:
            return
        if outcome != usage_pb2.OUTCOME_SUCCESS or reason.endswith("/ensemble"):
            return
        # The request's own record comes last (after its cascade/ensemble attempts).
        answers = self._answers
        if request_id in answers:  # answered again (a client reused its request id)
            answers.move_to_end(request_id)
        answers[request_id] = (model, task_kind, False)
        while len(answers) > self.capacity:
            answers.popitem(last=False)

    def answer(self, request_id: str) -> tuple[str, str] | None:
        found = self._answers.get(request_id)
        return (found[0], found[1]) if found is not None else None

    # out ------------------------------------------------------------------

    def emit(self, request_id: str, model: str, task_kind: str, score: float, source: str) -> None:
        fb = usage_pb2.Feedback(
            request_id=request_id, model=model, task_kind=task_kind, score=score, source=source
        )
        self.recent.append(fb)
        self._changed.set()
        for out in self.outputs:
            try:
                out(fb)
            except Exception:
                log.exception("feedback output failed")

    async def wait(self, count: int, within_s: float = 5.0) -> None:
        """Until ``recent`` holds at least ``count`` items (tests wait on this)."""
        async with asyncio.timeout(within_s):
            while len(self.recent) < count:
                self._changed.clear()
                await self._changed.wait()

    # HTTP: POST /v1/feedback ------------------------------------------------

    def rate(self, body: Any) -> dict[str, Any]:
        rid, score = parse_rating(body)
        found = self._answers.get(rid)
        if found is None:
            raise ApiError(
                404,
                f"no recent answer with request id {rid!r} (only the last "
                f"{self.capacity} answers of this sidecar can be rated)",
                code="request_not_found",
                param="request_id",
            )
        model, task_kind, rated = found
        if rated:
            raise ApiError(409, f"request {rid!r} was already rated", code="already_rated")
        self._answers[rid] = (model, task_kind, True)  # keeps its place in the order
        self.emit(rid, model, task_kind, score, "explicit")
        return {
            "object": "feedback",
            "request_id": rid,
            "model": model,
            "task_kind": task_kind,
            "score": score,
        }

    async def serve(self, req: Request, w: ResponseWriter) -> None:
        headers = [("content-type", "application/json")]
        try:
            if req.method != "POST":
                raise ApiError(405, f"{req.path} accepts POST only", code="method_not_allowed")
            try:
                body = orjson.loads(req.body)
            except orjson.JSONDecodeError as exc:
                raise ApiError(400, f"the request body is not valid JSON: {exc}") from exc
            w.send(200, headers, orjson.dumps(self.rate(body)))
        except ApiError as err:
            w.send(err.status, headers, openai_error(err))
