"""The native lane (sidecar/switchman_sidecar/lane.py, native/src/lane.rs).

The lane must be invisible: every answer it gives equals the Python path's
(status, body, decision and cost headers, usage record), every request it
does not take reaches the Python server on the same connection, a failed
attempt ends in the Python path's failover, and each request yields exactly
one usage record. Each test runs the same traffic through a sidecar with the
lane and one without (``native_lane=False``) where a comparison says more.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import openai
import pytest

from switchman_protocol.v1 import budget_pb2, usage_pb2
from switchman_sidecar import lane as lane_mod
from switchman_sidecar.main import Sidecar

pytestmark = pytest.mark.skipif(
    not lane_mod.available(), reason="switchman_native without the lane"
)

HI = [{"role": "user", "content": "hello there lane"}]


def _stats(sidecar: Sidecar) -> dict[str, Any]:
    assert sidecar.lane is not None
    sidecar.lane.settle()  # finished requests are settled in batches
    return sidecar.lane.stats()


def _switchman_headers(headers: httpx.Headers) -> dict[str, str]:
    return {
        k: v
        for k, v in headers.items()
        if k.startswith("x-switchman-") and k != "x-switchman-request-id"
    }


def _record_fields(record: usage_pb2.UsageRecord) -> tuple[Any, ...]:
    return (
        record.model,
        record.provider,
        record.team,
        record.input_tokens,
        record.cached_input_tokens,
        record.output_tokens,
        record.reasoning_tokens,
        record.cost,
        record.outcome,
        record.estimated,
        record.fallbacks,
        record.reason,
        record.streamed,
    )


async def _settled(sidecar: Sidecar, records: Any, n: int) -> list[Any]:
    for _ in range(200):
        if len(records(sidecar)) >= n:
            break
        await asyncio.sleep(0.01)
    return list(records(sidecar))


@pytest.mark.parametrize("name", ["gpt-4o", "best"])
async def test_answers_equal_the_python_path(
    make_sidecar: Any, records: Any, fake: Any, name: str, sdk: Any
) -> None:
    """Same request, lane and Python: same answer, headers, usage record (a model
    named directly, and through an alias)."""
    on = await make_sidecar()
    off = await make_sidecar(native_lane=False)
    assert off.lane is None
    assert {"gpt-4o", "best"} <= set(_stats(on)["routes"])
    out = []
    for sidecar in (on, off):
        client = sdk(sidecar, **{"x-fake-cached-tokens": "4", "x-fake-reasoning-tokens": "2"})
        raw = await client.chat.completions.with_raw_response.create(
            model=name, messages=HI, max_tokens=50, temperature=0.2
        )
        completion = raw.parse()
        out.append((raw.status_code, raw.headers, completion))
        sent = fake.received[-1]
        # The upstream's name replaces the client's in the body; nothing else changes.
        assert sent.body["model"] == "gpt-4o-upstream"
        if sidecar is on:
            # In place: the client's bytes but for the model's value.
            assert sent.raw.count(b'"gpt-4o-upstream"') == 1 and b'"temperature"' in sent.raw
        assert sent.body["messages"] == HI and sent.body["max_tokens"] == 50
        assert sent.headers["authorization"] == "Bearer sk-secret-gpt-4o"
        assert sent.headers["x-fake-cached-tokens"] == "4"  # forwarded prefix
    (s_on, h_on, c_on), (s_off, h_off, c_off) = out
    assert s_on == s_off == 200
    assert _switchman_headers(h_on) == _switchman_headers(h_off)
    assert h_on["content-type"] == h_off["content-type"] == "application/json"
    assert c_on.choices[0].message.content == c_off.choices[0].message.content
    assert c_on.usage == c_off.usage
    rec_on = (await _settled(on, records, 1))[0]
    rec_off = (await _settled(off, records, 1))[0]
    assert _record_fields(rec_on) == _record_fields(rec_off)
    assert rec_on.outcome == usage_pb2.OUTCOME_SUCCESS and rec_on.cost > 0
    assert rec_on.request_id == h_on["x-switchman-request-id"]
    stats = _stats(on)
    assert stats["served"] == 1 and stats["handed_over"] == 0


async def test_what_it_does_not_serve_reaches_python(
    make_sidecar: Any, records: Any, sdk: Any
) -> None:
    """Other providers, other paths, bad input: answered by the Python server on
    connections the lane handed over (the stream and the alias first: the lane's)."""
    sidecar = await make_sidecar()
    client = sdk(sidecar)
    stream = await client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    alias = await client.chat.completions.with_raw_response.create(model="best", messages=HI)
    assert alias.headers["x-switchman-reason"] == "alias"
    claude = await client.chat.completions.create(model="claude", messages=HI)
    assert claude.choices[0].message.content
    models = await client.models.list()
    assert {m.id for m in models.data} >= {"gpt-4o", "best"}
    with pytest.raises(openai.NotFoundError) as unknown:
        await client.chat.completions.create(model="no-such-model", messages=HI)
    assert unknown.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="gpt-4o", messages=[])
    async with httpx.AsyncClient(base_url=sidecar.url) as raw:
        bad = await raw.post(
            "/v1/chat/completions",
            content=b'{"model": "gpt-4o", "messages": [',
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 400
        assert "not valid JSON" in bad.json()["error"]["message"]
        wrong = await raw.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": HI, "stream": "yes"},
        )
        assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "stream"
    stats = _stats(sidecar)
    assert stats["served"] == 2  # the stream, the alias
    assert stats["handed_over"] >= 2  # a connection stays with Python once handed over
    # stream, alias, claude, unknown model, no messages, bad JSON, bad `stream`
    got = await _settled(sidecar, records, 7)
    assert len(got) == 7
    assert len({r.request_id for r in got}) == len(got)


async def test_a_connection_moves_to_python_midway(make_sidecar: Any, records: Any) -> None:
    """Keep-alive: the lane answers (a whole answer, a stream), then a request
    for another provider on the same connection is handed over, and that
    connection's later requests are Python's."""
    sidecar = await make_sidecar()
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as raw:
        first = await raw.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": HI})
        assert first.status_code == 200
        assert _stats(sidecar) == {**_stats(sidecar), "served": 1, "handed_over": 0}
        streamed = await raw.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": HI, "stream": True}
        )
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
        other = await raw.post("/v1/chat/completions", json={"model": "claude", "messages": HI})
        assert other.status_code == 200
        fourth = await raw.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": HI})
        assert fourth.status_code == 200
    stats = _stats(sidecar)
    assert (stats["served"], stats["handed_over"]) == (2, 1)
    assert len(await _settled(sidecar, records, 4)) == 4


async def test_failed_attempt_fails_over_in_python(
    make_sidecar: Any, records: Any, fake: Any, sdk: Any
) -> None:
    """A 503 on the lane's attempt: Python retries (its failover), the client gets
    the answer, one usage record, and the lane leaves the model alone for a while."""
    sidecar = await make_sidecar()
    client = sdk(sidecar, **{"x-fake-fail-first": "1", "x-fake-key": "lane-503"})
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.parse().choices[0].message.content
    # Counted by the Python path as its own first attempt.
    assert raw.headers["x-switchman-tried"] == "gpt-4o:http-503"
    stats = _stats(sidecar)
    assert stats["failed_attempts"] == 1 and stats["served"] == 0
    assert "gpt-4o" not in stats["routes"]  # paused
    got = await _settled(sidecar, records, 1)
    assert len(got) == 1 and got[0].outcome == usage_pb2.OUTCOME_SUCCESS
    # Upstream saw the lane's attempt, then Python's.
    assert sum(1 for r in fake.received if r.headers.get("x-fake-key") == "lane-503") == 2


async def test_unreachable_upstream(
    make_sidecar: Any, table_for: Any, model_for: Any, sdk: Any
) -> None:
    """Connection refused on the lane's attempt: Python answers with its error."""
    table = table_for("http://127.0.0.1:9")  # discard port: nothing listens
    table["models"] = [model_for("gpt-4o", "PROVIDER_OPENAI", "http://127.0.0.1:9/v1")]
    table["aliases"] = {}
    sidecar = await make_sidecar(table)
    client = sdk(sidecar)
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(model="gpt-4o", messages=HI)
    assert err.value.status_code == 502
    assert err.value.body["code"] == "upstream_unreachable"  # type: ignore[index]
    assert _stats(sidecar)["failed_attempts"] == 1
    # The lane's attempt and the Python path's retries (max_retries 2), one line each.
    tried = err.value.response.headers["x-switchman-tried"].split(",")
    assert tried == ["gpt-4o:connect"] * 3


async def test_a_fatal_answer_is_not_sent_twice(
    make_sidecar: Any, records: Any, fake: Any, sdk: Any
) -> None:
    """A 400 the provider gives the request itself: the client gets it from the
    lane's attempt, without a second request upstream."""
    sidecar = await make_sidecar()
    client = sdk(sidecar, **{"x-fake-status": "422", "x-fake-key": "lane-422"})
    with pytest.raises(openai.UnprocessableEntityError):
        await client.chat.completions.create(model="gpt-4o", messages=HI)
    assert sum(1 for r in fake.received if r.headers.get("x-fake-key") == "lane-422") == 1
    stats = _stats(sidecar)
    assert stats["failed_attempts"] == 1 and "gpt-4o" in stats["routes"]  # not paused
    got = await _settled(sidecar, records, 1)
    assert len(got) == 1 and got[0].outcome == usage_pb2.OUTCOME_UPSTREAM_ERROR


async def test_one_record_per_request_under_concurrency(
    make_sidecar: Any, records: Any, sdk: Any
) -> None:
    sidecar = await make_sidecar()
    client = sdk(sidecar)
    answers = await asyncio.gather(
        *(
            client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"question {i}"}]
            )
            for i in range(60)
        )
    )
    ids = {a.headers["x-switchman-request-id"] for a in answers}
    assert len(ids) == 60
    got = await _settled(sidecar, records, 60)
    assert len(got) == 60 and {r.request_id for r in got} == ids
    assert _stats(sidecar)["served"] == 60


async def test_client_request_id_is_kept(make_sidecar: Any, records: Any) -> None:
    sidecar = await make_sidecar()
    async with httpx.AsyncClient(base_url=sidecar.url) as raw:
        r = await raw.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": HI},
            headers={"x-request-id": "trace-123"},
        )
    assert r.headers["x-switchman-request-id"] == "trace-123"
    assert (await _settled(sidecar, records, 1))[0].request_id == "trace-123"
    assert _stats(sidecar)["served"] == 1


async def test_policy_features_turn_it_off(
    make_sidecar: Any, table_for: Any, fake: Any, sdk: Any
) -> None:
    """Rules, a PII policy, a shadow model or a budget state read or change each
    request: with any of them the lane takes nothing."""
    rules = await make_sidecar(
        table_for(fake.url, rules=[{"name": "r", "when": "true", "route_to": "gpt-4o"}])
    )
    assert _stats(rules)["routes"] == []
    pii = await make_sidecar(table_for(fake.url, pii={"enabled": True}))
    assert _stats(pii)["routes"] == []
    budget = await make_sidecar()
    assert _stats(budget)["routes"]
    budget.budget.update(
        budget_pb2.BudgetState(
            team="team-a",
            limit=100.0,
            allowance=100.0,
            condition=budget_pb2.BUDGET_CONDITION_SOFT_LIMITED,
        )
    )
    assert _stats(budget)["routes"] == []
    client = sdk(budget)
    await client.chat.completions.create(model="gpt-4o", messages=HI)
    assert _stats(budget)["served"] == 0


async def test_budget_credit(make_sidecar: Any, records: Any, sdk: Any) -> None:
    """With an Ok budget state the lane serves on a credit reserved in the gate:
    half of what the sidecar may commit. A request whose worst case does not fit
    goes to Python, which admits or refuses it as always; spend is counted once."""
    sidecar = await make_sidecar()
    gate = sidecar.budget
    gate.update(budget_pb2.BudgetState(team="team-a", limit=1.0, allowance=1.0))
    assert sidecar.lane is not None
    limit, held = sidecar.lane._lane.credit()
    assert limit == pytest.approx(0.5) and held == 0.0
    assert gate.reserved == pytest.approx(0.5)  # the credit, as a reservation
    client = sdk(sidecar)
    # Worst case: 4,096 output tokens at $10/Mtok = $0.041: fits.
    await client.chat.completions.create(model="gpt-4o", messages=HI)
    [record] = records(sidecar)
    assert _stats(sidecar)["served"] == 1
    assert gate.unreported == pytest.approx(record.cost)  # spent, once
    assert gate.reserved == pytest.approx(0.5 - record.cost)  # out of the credit
    limit, held = sidecar.lane._lane.credit()
    assert limit == pytest.approx(0.5 - record.cost) and held == 0.0
    # 100,000 output tokens: $1 worst case, more than the credit: Python's
    # admission decides (and refuses: more than the sidecar's whole share).
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=100_000)
    assert refused.value.body["code"] == "budget_exceeded"  # type: ignore[index]
    assert _stats(sidecar)["served"] == 1 and _stats(sidecar)["handed_over"] == 1
    # A new state replaces the credit (what the sidecar may commit, halved).
    gate.update(budget_pb2.BudgetState(team="team-a", limit=1.0, allowance=0.2))
    limit, _ = sidecar.lane._lane.credit()
    assert limit == pytest.approx((0.2 - gate.unreported) / 2)
    await sidecar.lane.close()
    assert gate.reserved == pytest.approx(0.0)  # the credit is released


async def test_table_changes_reach_it(
    make_sidecar: Any, table_for: Any, fake: Any, sdk: Any
) -> None:
    from switchman_sidecar.table import parse_table

    sidecar = await make_sidecar()
    assert "gpt-4o" in _stats(sidecar)["routes"]
    sidecar.store.apply(
        parse_table(table_for(fake.url, rules=[{"name": "r", "when": "true", "reject": "no"}]))
    )
    assert _stats(sidecar)["routes"] == []
    client = sdk(sidecar)
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(model="gpt-4o", messages=HI)
    sidecar.store.apply(parse_table(table_for(fake.url)))
    assert "gpt-4o" in _stats(sidecar)["routes"]


async def test_close_finishes_requests_in_flight(make_sidecar: Any, records: Any, sdk: Any) -> None:
    sidecar = await make_sidecar()
    client = sdk(sidecar, **{"x-fake-latency-ms": "300"})
    pending = asyncio.ensure_future(client.chat.completions.create(model="gpt-4o", messages=HI))
    await asyncio.sleep(0.1)
    assert sidecar.lane is not None
    await sidecar.lane.close()
    completion = await pending
    assert completion.choices[0].message.content
    assert len(records(sidecar)) == 1


async def test_off_by_setting(make_sidecar: Any) -> None:
    sidecar = await make_sidecar(native_lane=False)
    assert sidecar.lane is None


async def test_expect_continue_is_not_kept_waiting(make_sidecar: Any) -> None:
    """``Expect: 100-continue``: the client waits for a 100 before its body; the
    lane hands such a request over at once (the Python server answers it)."""
    sidecar = await make_sidecar()
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
    host, port = sidecar.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(body)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()
    assert _stats(sidecar)["handed_over"] == 1


async def test_python_takes_the_port_if_the_lane_stops(make_sidecar: Any, sdk: Any) -> None:
    sidecar = await make_sidecar()
    lane = sidecar.lane
    assert lane is not None
    lane._lane.stop(0.0)  # the thread ends and closes its handle on the socket
    await asyncio.to_thread(lane._lane.join)
    lane._dead("stopped in a test")
    await asyncio.sleep(0.05)
    client = sdk(sidecar)
    completion = await client.chat.completions.create(model="gpt-4o", messages=HI)
    assert completion.choices[0].message.content
    assert lane.stats()["dead"] == "stopped in a test"


async def test_answer_in_flight_across_a_table_change(
    make_sidecar: Any, records: Any, table_for: Any, fake: Any, sdk: Any
) -> None:
    """The lane stops serving a model while a request to it is in flight: the
    answer still arrives and is priced by the model it was sent to."""
    from switchman_sidecar.table import parse_table

    sidecar = await make_sidecar()
    client = sdk(sidecar, **{"x-fake-latency-ms": "200"})
    pending = asyncio.ensure_future(client.chat.completions.create(model="gpt-4o", messages=HI))
    await asyncio.sleep(0.05)
    sidecar.store.apply(parse_table(table_for(fake.url, pii={"enabled": True})))
    assert _stats(sidecar)["routes"] == []
    completion = await pending
    assert completion.usage is not None
    [record] = records(sidecar)
    assert record.model == "gpt-4o" and record.provider == "openai"
    assert record.cost > 0 and record.reason == "requested"
    assert _stats(sidecar)["served"] == 1


# --- streams -------------------------------------------------------------------

_WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
_IDS = re.compile(rb'"(id|created|system_fingerprint)":("[^"]*"|\d+)')


def _normal(text: bytes) -> bytes:
    """A stream's bytes without what differs per answer (ids, timestamps)."""
    return _IDS.sub(rb'"\1":_', text)


async def _stream_both(
    make_sidecar: Any, records: Any, body: dict[str, Any], headers: dict[str, str]
) -> list[tuple[httpx.Response, Any]]:
    """The same streamed request through a sidecar with the lane and one without."""
    out = []
    for lane in (True, False):
        sidecar = await make_sidecar(native_lane=lane)
        async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as client:
            r = await client.post("/v1/chat/completions", json=body, headers=headers)
        [record] = await _settled(sidecar, records, 1)
        out.append((r, record))
        if lane:
            assert _stats(sidecar)["served"] == 1, "the lane did not take the stream"
    return out


@pytest.mark.parametrize(
    ("extra", "headers"),
    [
        ({}, {}),
        ({"stream_options": {"include_usage": True}}, {}),
        ({"stream_options": {"include_usage": True}}, {"x-fake-no-usage": "true"}),
        ({}, {"x-fake-no-usage": "true"}),
        ({"stream_options": {"include_usage": 1}}, {"x-fake-cached-tokens": "3"}),
        ({"tools": [_WEATHER]}, {"x-fake-tool-call": "auto"}),
        ({}, {"x-fake-cut-after": "2"}),
    ],
    ids=["plain", "usage", "usage-none-reported", "none-reported", "usage-1", "tools", "cut"],
)
async def test_streams_equal_the_python_path(
    make_sidecar: Any, records: Any, extra: dict[str, Any], headers: dict[str, str]
) -> None:
    body = {"model": "gpt-4o", "messages": HI, "stream": True, **extra}
    (lane, lane_rec), (py, py_rec) = await _stream_both(make_sidecar, records, body, headers)
    assert lane.status_code == py.status_code == 200
    assert _switchman_headers(lane.headers) == _switchman_headers(py.headers)
    for name in ("content-type", "cache-control", "transfer-encoding"):
        assert lane.headers.get(name) == py.headers.get(name), name
    if "x-fake-cut-after" in headers:
        # The error event's text names the broken connection in each its own words.
        assert lane.text.count("data: ") == py.text.count("data: ")
        assert '"code":"upstream_error"' in lane.text and '"code":"upstream_error"' in py.text
    else:
        assert _normal(lane.content) == _normal(py.content)
    assert _record_fields(lane_rec) == _record_fields(py_rec)
    assert lane_rec.streamed


async def test_stream_failing_before_its_first_event_fails_over(
    make_sidecar: Any, records: Any
) -> None:
    sidecar = await make_sidecar()
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as client:
        r = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": HI, "stream": True},
            headers={"x-fake-fail-first": "1", "x-fake-key": "lane-stream-503"},
        )
    assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
    assert r.headers["x-switchman-tried"] == "gpt-4o:http-503"
    assert _stats(sidecar)["failed_attempts"] == 1
    [record] = await _settled(sidecar, records, 1)
    assert record.outcome == usage_pb2.OUTCOME_SUCCESS and record.streamed


async def test_client_leaving_a_stream_is_charged_for_what_was_produced(
    make_sidecar: Any, records: Any
) -> None:
    sidecar = await make_sidecar()
    body = {"model": "gpt-4o", "messages": HI, "stream": True}
    slow = {"x-fake-drip-ms": "50", "x-fake-content": "one two three four five six"}
    async with (
        httpx.AsyncClient(base_url=sidecar.url, timeout=10) as client,
        client.stream("POST", "/v1/chat/completions", json=body, headers=slow) as r,
    ):
        async for _line in r.aiter_lines():
            break  # the first event, then away
    for _ in range(100):
        got = records(sidecar)
        if got:
            break
        await asyncio.sleep(0.02)
    [record] = got
    assert record.outcome == usage_pb2.OUTCOME_CLIENT_ABORTED
    assert record.streamed and record.estimated and record.output_tokens >= 1
    assert _stats(sidecar)["served"] == 1


async def test_requests_outliving_the_grace_period_are_still_recorded(
    make_sidecar: Any, records: Any, sdk: Any
) -> None:
    sidecar = await make_sidecar()
    client = sdk(sidecar, **{"x-fake-latency-ms": "3000"})
    pending = asyncio.ensure_future(client.chat.completions.create(model="gpt-4o", messages=HI))
    await asyncio.sleep(0.1)
    assert sidecar.lane is not None
    await sidecar.lane.close(grace_s=0.1)
    with pytest.raises(openai.APIConnectionError):
        await pending
    [record] = records(sidecar)
    assert record.outcome == usage_pb2.OUTCOME_CLIENT_ABORTED
    assert record.estimated and record.input_tokens > 0 and record.model == "gpt-4o"


async def test_unused_credit_goes_back_when_python_needs_it(
    make_sidecar: Any, records: Any, sdk: Any
) -> None:
    """A request too big for the lane's half but within the sidecar's whole share
    is admitted by Python, which takes the lane's unused credit back first."""
    sidecar = await make_sidecar()
    gate = sidecar.budget
    gate.update(budget_pb2.BudgetState(team="team-a", limit=0.1, allowance=0.1))
    assert sidecar.lane is not None and sidecar.lane._lane.credit()[0] == pytest.approx(0.05)
    client = sdk(sidecar)
    # Worst case 7,000 output tokens at $10/Mtok = $0.07: more than the lane's
    # $0.05, less than the $0.10 the sidecar may commit.
    completion = await client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=7000)
    assert completion.choices[0].message.content
    assert _stats(sidecar)["served"] == 0 and _stats(sidecar)["handed_over"] == 1
    [record] = records(sidecar)
    assert gate.unreported == pytest.approx(record.cost)
    assert gate.reserved == pytest.approx(0.0)  # the lane's credit was taken back


async def test_alias_body_is_edited_in_place(make_sidecar: Any, fake: Any) -> None:
    """Through an alias the lane sends the client's bytes with only the model's
    value replaced (spacing, key order, unknown fields kept)."""
    sidecar = await make_sidecar()
    body = b'{"messages": [{"role": "user", "content": "hi"}],  "model": "best", "x_extra": 1}'
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as client:
        r = await client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    assert r.status_code == 200 and r.headers["x-switchman-reason"] == "alias"
    assert fake.received[-1].raw == body.replace(b'"best"', b'"gpt-4o-upstream"')
    assert _stats(sidecar)["served"] == 1
