"""Feedback API, cascade feedback and shadow routing through a real sidecar.

The official OpenAI SDK talks to a real sidecar (127.0.0.1, port 0) in front of
the fake upstream; ratings are posted with httpx (what the SDK itself uses).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest

from switchman_fake import FakeUpstream
from switchman_protocol.v1 import budget_pb2, usage_pb2
from switchman_sidecar.main import Sidecar
from switchman_sidecar.routing.ensemble import shadow_agreement
from switchman_sidecar.table import parse_table
from switchman_sidecar.usage import InMemoryUsageSink

Start = Callable[[dict[str, Any]], Awaitable[Sidecar]]


def _model(name: str, endpoint: str, price: float, quality: float) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "PROVIDER_OPENAI",
        "upstream_model": f"{name}-upstream",
        "endpoint": endpoint,
        "credential": {"api_key": f"sk-{name}"},
        "price": {"input_per_mtok": price, "output_per_mtok": price * 4},
        "context_window": 128000,
        "quality": {"overall": quality},
    }


def steered(fake: FakeUpstream, content: str, latency_ms: int = 0) -> str:
    knobs = f"content={quote(content, safe='')}"
    if latency_ms:
        knobs += f",latency-ms={latency_ms}"
    return f"{fake.url}/_steer/{knobs}/v1"


def table(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {
        "team": "t",
        "policies": ["ns/web"],
        "models": [
            _model("cheap", steered(fake, "The answer is 4."), 0.1, 0.7),
            _model("strong", steered(fake, "The answer is 5."), 5.0, 0.9),
        ],
        "default_strategy": "STRATEGY_COST",
        "quality_bar": 0.5,
        "resilience": {"max_retries": 0, "per_try_timeout_ms": 5000},
        **extra,
    }


def usage(sidecar: Sidecar) -> InMemoryUsageSink:
    if sidecar.lane is not None:
        sidecar.lane.settle()  # the native lane's records follow its answers
    s = sidecar.sinks.sinks[0]
    assert isinstance(s, InMemoryUsageSink)
    return s


async def ask(sidecar: Sidecar, text: str = "what is 2 + 2?", rid: str | None = None) -> Any:
    client = openai.AsyncOpenAI(base_url=sidecar.url + "/v1", api_key="x", max_retries=0)
    try:
        return await client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": text}],
            extra_headers={"x-request-id": rid} if rid else None,
        )
    finally:
        await client.close()


async def rate(sidecar: Sidecar, body: Any, method: str = "POST") -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        if isinstance(body, bytes):
            return await client.request(method, sidecar.url + "/v1/feedback", content=body)
        return await client.request(method, sidecar.url + "/v1/feedback", json=body)


# -- the rating API ----------------------------------------------------------------


async def test_rating_by_request_id_is_attributed_and_sent_once(
    fake: FakeUpstream, start_sidecar: Start
) -> None:
    sidecar = await start_sidecar(table(fake))
    sent: list[usage_pb2.Feedback] = []
    sidecar.feedback.outputs.append(sent.append)
    raw = await ask(sidecar)
    rid = raw.headers["x-switchman-request-id"]
    assert raw.headers["x-switchman-model"] == "cheap"

    resp = await rate(sidecar, {"request_id": rid, "thumbs": "down", "comment": "wrong"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "object": "feedback",
        "request_id": rid,
        "model": "cheap",
        "task_kind": "math",
        "score": 0.0,
    }
    assert [(f.request_id, f.model, f.task_kind, f.score, f.source) for f in sent] == [
        (rid, "cheap", "math", 0.0, "explicit")
    ]
    again = await rate(sidecar, {"request_id": rid, "score": 1})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_rated"
    assert len(sent) == 1


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"request_id": "nope", "score": 0.5}, 404, "request_id"),
        ({"score": 0.5}, 400, "request_id"),
        ({"request_id": "x", "score": 1.5}, 400, "score"),
        ({"request_id": "x", "score": "good"}, 400, "score"),
        ({"request_id": "x", "score": True}, 400, "score"),
        ({"request_id": "x", "thumbs": "sideways"}, 400, "thumbs"),
        ({"request_id": "x", "thumbs": "up", "score": 1}, 400, "score"),
        ([1, 2], 400, None),
        (b"{not json", 400, None),
    ],
)
async def test_bad_ratings_get_openai_shaped_errors(
    fake: FakeUpstream, start_sidecar: Start, body: Any, status: int, param: str | None
) -> None:
    sidecar = await start_sidecar(table(fake))
    resp = await rate(sidecar, body)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param
    assert not sidecar.feedback.recent


async def test_feedback_only_accepts_post(fake: FakeUpstream, start_sidecar: Start) -> None:
    sidecar = await start_sidecar(table(fake))
    async with httpx.AsyncClient(timeout=5) as client:
        resp = await client.get(sidecar.url + "/v1/feedback")
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"


async def test_lru_forgets_the_oldest_answers(fake: FakeUpstream, start_sidecar: Start) -> None:
    sidecar = await start_sidecar(table(fake))
    sidecar.feedback.capacity = 2
    for rid in ("r1", "r2", "r3"):
        await ask(sidecar, rid=rid)
    assert sidecar.feedback.answer("r1") is None
    assert sidecar.feedback.answer("r3") == ("cheap", "math")
    assert (await rate(sidecar, {"request_id": "r1", "score": 1})).status_code == 404


async def test_kept_answers_leave_the_collectors_older_generations(
    fake: FakeUpstream, start_sidecar: Start
) -> None:
    """The 10,000 answers kept for rating are untracked after one collection (so a
    full collection does not walk them); rating one keeps it so."""
    sidecar = await start_sidecar(table(fake))
    for rid in ("g1", "g2"):
        await ask(sidecar, rid=rid)
    assert (await rate(sidecar, {"request_id": "g1", "score": 1})).status_code == 200
    gc.collect()
    kept = list(sidecar.feedback._answers.values())
    assert len(kept) == 2 and not any(gc.is_tracked(answer) for answer in kept)
    assert (await rate(sidecar, {"request_id": "g1", "score": 0})).status_code == 409


async def test_cascade_escalation_is_feedback(fake: FakeUpstream, start_sidecar: Start) -> None:
    cascade = {"enabled": True, "models": ["cheap", "strong"], "check": "json", "threshold": 0.5}
    sidecar = await start_sidecar(table(fake, cascade=cascade))
    raw = await ask(sidecar, "return JSON with the total")
    assert raw.headers["x-switchman-model"] == "strong"  # "The answer is 4." is not JSON
    rid = raw.headers["x-switchman-request-id"]
    fb = [(f.request_id, f.model, f.score, f.source) for f in sidecar.feedback.recent]
    assert fb == [(rid, "cheap", 0.0, "cascade")]
    # The final answer is what a rating is attributed to.
    task = sidecar.feedback.recent[0].task_kind
    assert task and sidecar.feedback.answer(rid) == ("strong", task)


# -- shadow routing ----------------------------------------------------------------


async def test_shadow_runs_after_the_answer_is_charged_and_compared(
    fake: FakeUpstream, start_sidecar: Start
) -> None:
    shadow = {"model": "strong", "sample_rate": 1.0, "max_spend": 10.0}
    sidecar = await start_sidecar(table(fake, shadow=shadow))
    raw = await ask(sidecar, rid="s1")
    assert raw.headers["x-switchman-model"] == "cheap"
    assert raw.parse().choices[0].message.content == "The answer is 4."
    await sidecar.feedback.wait(1)
    (fb,) = sidecar.feedback.recent
    assert (fb.request_id, fb.model, fb.task_kind, fb.source) == ("s1", "cheap", "math", "shadow")
    assert fb.score == shadow_agreement("The answer is 4.", "The answer is 5.") < 1.0
    await usage(sidecar).wait(2)
    records = {r.model: r for r in usage(sidecar).records}
    assert not records["cheap"].shadow
    assert records["strong"].shadow and records["strong"].reason == "shadow"
    assert records["strong"].request_id == "s1" and records["strong"].cost > 0
    # What the shadow got is what the answering model got.
    bodies = [r.body for r in fake.received if r.path.endswith("/chat/completions")]
    assert len(bodies) == 2 and bodies[0]["messages"] == bodies[1]["messages"]
    assert sidecar.shadow.spent == {"ns/web": records["strong"].cost}
    # /metrics counts the shadow's call and its money, not as a request.
    text = sidecar.metrics.render().decode()
    assert 'switchman_extra_attempts_total{kind="shadow",model="strong"} 1.0' in text
    assert f'switchman_cost_usd_total{{model="strong"}} {records["strong"].cost!r}' in text
    assert 'switchman_requests_total{api="chat",model="strong"' not in text


async def test_shadow_stops_at_the_spend_cap_across_tables(
    fake: FakeUpstream, start_sidecar: Start
) -> None:
    shadow = {"model": "strong", "sample_rate": 1.0, "max_spend": 1e-9}
    sidecar = await start_sidecar(table(fake, shadow=shadow))
    await ask(sidecar, rid="a")
    await sidecar.feedback.wait(1)
    # A new table (what every feedback update pushes) must not reset the cap.
    sidecar.store.apply(parse_table(table(fake, shadow=shadow)))
    await ask(sidecar, rid="b")
    await ask(sidecar, rid="c")
    await asyncio.sleep(0)  # any shadow would have been started synchronously
    assert not sidecar.shadow.tasks
    assert sidecar.shadow.started == 1
    assert [r.request_id for r in usage(sidecar).records if r.shadow] == ["a"]


async def test_no_shadow_when_the_budget_is_soft_limited(
    fake: FakeUpstream, start_sidecar: Start
) -> None:
    shadow = {"model": "strong", "sample_rate": 1.0}
    sidecar = await start_sidecar(table(fake, shadow=shadow))
    sidecar.budget.update(
        budget_pb2.BudgetState(
            team="t",
            condition=budget_pb2.BUDGET_CONDITION_SOFT_LIMITED,
            limit=100,
            remaining=10,
            allowance=10,
        )
    )
    raw = await ask(sidecar)
    assert raw.headers["x-switchman-model"] == "cheap"
    assert sidecar.shadow.started == 0


async def test_shadow_tasks_are_bounded_and_cancelled_on_close(
    fake: FakeUpstream, start_sidecar: Start
) -> None:
    t = table(fake, shadow={"model": "strong", "sample_rate": 1.0})
    t["models"][1]["endpoint"] = steered(fake, "slow", latency_ms=4000)
    t["resilience"]["per_try_timeout_ms"] = 8000
    sidecar = await start_sidecar(t)
    sidecar.shadow.max_concurrent = 1
    first = await ask(sidecar, rid="x1")  # the client does not wait for the slow shadow
    assert first.headers["x-switchman-model"] == "cheap"
    await ask(sidecar, rid="x2")
    assert sidecar.shadow.started == 1 and sidecar.shadow.dropped == 1
    (task,) = sidecar.shadow.tasks
    async with asyncio.timeout(3):
        await sidecar.shadow.close()
    assert task.cancelled() and not sidecar.shadow.tasks
    assert not [r for r in usage(sidecar).records if r.shadow]


@pytest.mark.parametrize("client_usage", [False, True])
async def test_a_streamed_answer_is_shadowed_with_the_text_the_client_saw(
    fake: FakeUpstream, start_sidecar: Start, client_usage: bool
) -> None:
    shadow = {"model": "strong", "sample_rate": 1.0, "max_spend": 10.0}
    sidecar = await start_sidecar(table(fake, shadow=shadow))
    client = openai.AsyncOpenAI(base_url=sidecar.url + "/v1", api_key="x", max_retries=0)
    try:
        stream = await client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "what is 2 + 2?"}],
            stream=True,
            stream_options={"include_usage": True} if client_usage else None,
            extra_headers={"x-request-id": "st1"},
        )
        chunks = [c async for c in stream]
    finally:
        await client.close()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The answer is 4."
    assert bool(chunks[-1].usage) == client_usage  # the client's stream is unchanged
    await sidecar.feedback.wait(1)
    (fb,) = sidecar.feedback.recent
    assert (fb.request_id, fb.model, fb.source) == ("st1", "cheap", "shadow")
    assert fb.score == shadow_agreement("The answer is 4.", "The answer is 5.")
    await usage(sidecar).wait(2)
    records = {r.model: r for r in usage(sidecar).records}
    assert records["cheap"].streamed and not records["cheap"].shadow
    assert records["strong"].shadow and not records["strong"].streamed
    # The shadow got the same messages, asked for a whole answer.
    answered, shadowed = [r.body for r in fake.received if r.path.endswith("/chat/completions")]
    assert answered["stream"] is True and "stream" not in shadowed
    assert answered["messages"] == shadowed["messages"]


async def test_an_unsampled_stream_is_not_shadowed(
    fake: FakeUpstream, start_sidecar: Start
) -> None:
    sidecar = await start_sidecar(table(fake, shadow={"model": "strong", "sample_rate": 0.0}))
    client = openai.AsyncOpenAI(base_url=sidecar.url + "/v1", api_key="x", max_retries=0)
    try:
        stream = await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert [c async for c in stream]
    finally:
        await client.close()
    await asyncio.sleep(0)
    assert sidecar.shadow.started == 0 and len(fake.received) == 1
