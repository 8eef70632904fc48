"""The request path's shortcuts keep its behaviour: the client's bytes go upstream
only when nothing would change them, one log line per request carries the usage,
pooled upstream connections are reused, model facts price like the protobuf."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from switchman_fake import FakeUpstream
from switchman_protocol.v1 import budget_pb2, routes_pb2
from switchman_sidecar.budget import BudgetGate
from switchman_sidecar.http.client import Origin
from switchman_sidecar.main import Sidecar
from switchman_sidecar.settings import SidecarSettings
from switchman_sidecar.table import ModelFacts, parse_table
from switchman_sidecar.usage import Usage, cost_of


def _table(fake: FakeUpstream, model_for: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return {
        "team": "team-a",
        "models": [
            # The client's name is the upstream's name: the body needs no rewrite.
            model_for("gpt-4o", "PROVIDER_OPENAI", f"{fake.url}/v1", upstream_model="gpt-4o"),
            model_for("other", "PROVIDER_OPENAI", f"{fake.url}/v1"),
        ],
        "aliases": {"best": "gpt-4o"},
    }


async def _post(sidecar: Sidecar, body: bytes, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as client:
        return await client.post(
            "/v1/chat/completions",
            content=body,
            headers={"content-type": "application/json", **headers},
        )


async def test_unchanged_body_goes_upstream_as_the_client_sent_it(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any
) -> None:
    # The Python path's bytes (the native lane replaces an alias's model value in
    # place instead of re-encoding: test_native_lane.py).
    sidecar = await make_sidecar(_table(fake, model_for), native_lane=False)
    # Odd spacing, key order and an unknown field: kept byte for byte.
    body = b'{"messages": [{"role": "user", "content": "hi"}],  "model": "gpt-4o", "x_extra": 1}'
    r = await _post(sidecar, body)
    assert r.status_code == 200, r.text
    assert fake.received[-1].raw == body

    # An alias: the model name must change, so the body is re-encoded.
    r = await _post(sidecar, body.replace(b'"gpt-4o"', b'"best"'))
    assert r.status_code == 200, r.text
    sent = fake.received[-1]
    assert sent.raw != body and sent.body["model"] == "gpt-4o" and sent.body["x_extra"] == 1

    # A stream that did not ask for usage: the sidecar adds the request for it.
    stream = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    r = await _post(sidecar, stream)
    assert r.status_code == 200 and '"usage"' not in r.text  # not shown to the client
    assert fake.received[-1].body["stream_options"] == {"include_usage": True}

    # A stream that asked for usage itself needs nothing added.
    asked = stream.replace(
        b'"stream":true', b'"stream":true,"stream_options":{"include_usage":true}'
    )
    r = await _post(sidecar, asked)
    assert r.status_code == 200
    assert fake.received[-1].raw == asked
    assert '"usage":{' in r.text


async def test_a_rewritten_body_is_never_sent_as_the_client_bytes(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any
) -> None:
    """A rule capping max_tokens changes the body: what goes upstream is the capped one."""
    table = _table(fake, model_for)
    table["rules"] = [{"name": "cap", "when": "true", "max_output_tokens": 5}]
    sidecar = await make_sidecar(table)
    body = b'{"model":"gpt-4o","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}'
    r = await _post(sidecar, body)
    assert r.status_code == 200, r.text
    assert fake.received[-1].body["max_tokens"] == 5


@pytest.mark.parametrize("access_log", [True, False])
async def test_one_log_line_per_request_carries_its_usage(
    fake: FakeUpstream,
    model_for: Any,
    capsys: pytest.CaptureFixture[str],
    access_log: bool,
) -> None:
    settings = SidecarSettings(port=0, admin_port=0, access_log=access_log, log_usage=True)
    sidecar = Sidecar(settings)
    sidecar.store.apply(parse_table(_table(fake, model_for)))
    await sidecar.start()
    answered = []
    try:
        for word in ("one", "two"):
            body = orjson.dumps({"model": "best", "messages": [{"role": "user", "content": word}]})
            r = await _post(sidecar, body, **{"x-request-id": f"req-{word}"})
            assert r.status_code == 200, r.text
            answered.append(r.json()["usage"])
        r = await _post(sidecar, b'{"model":"nope","messages":[{"role":"user","content":"x"}]}')
        assert r.status_code == 404
    finally:
        await sidecar.close()  # flushes the log buffer
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    lines = [line for line in lines if line.get("msg") in ("request", "usage")]
    assert len(lines) == 3  # one per request, never two
    first = lines[0]
    if access_log:
        assert {line["msg"] for line in lines} == {"request"}
        assert first["outcome"] == "success" and first["status"] == 200
        assert first["team"] == "team-a" and first["requested"] == "best"
        assert lines[2]["outcome"] == "rejected" and lines[2]["status"] == 404
    else:
        assert {line["msg"] for line in lines} == {"usage"}
        assert first["outcome"] == "OUTCOME_SUCCESS" and first["team"] == "team-a"
    assert [line["request_id"] for line in lines[:2]] == ["req-one", "req-two"]
    assert first["model"] == "gpt-4o" and first["provider"] == "openai"
    usage = answered[0]
    assert first["input_tokens"] == usage["prompt_tokens"] > 0
    assert first["output_tokens"] == usage["completion_tokens"] > 0
    assert first["cached_input_tokens"] == 0 and first["reasoning_tokens"] == 0
    assert first["fallbacks"] == 0 and first["estimated"] is False
    expected = (first["input_tokens"] * 2.5 + first["output_tokens"] * 10.0) / 1e6
    assert first["cost"] == pytest.approx(expected)
    # The answers are known to the feedback log without a record being built.
    assert sidecar.feedback.answer("req-one") == ("gpt-4o", first.get("task_kind") or "")


async def test_pooled_upstream_connection_serves_request_after_request(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any, records: Any
) -> None:
    # The Python path's pool (the native lane keeps its own).
    sidecar = await make_sidecar(_table(fake, model_for), native_lane=False)
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"again"}]}'
    seen = set()
    for i in range(6):
        stream = i % 2 == 1  # streamed and whole answers alternate on one connection
        data = body.replace(b'"model"', b'"stream":true,"model"') if stream else body
        r = await _post(sidecar, data)
        assert r.status_code == 200 and "again" in r.text
        [pool] = sidecar.client._pools.values()
        assert len(pool.idle) == 1
        seen.add(id(pool.idle[0]))
    assert len(seen) == 1  # the same keep-alive connection every time
    assert len(records(sidecar)) == 6


def test_model_facts_price_like_the_protobuf() -> None:
    for price in (
        routes_pb2.Price(input_per_mtok=2.5, cached_input_per_mtok=1.25, output_per_mtok=10),
        routes_pb2.Price(input_per_mtok=3, output_per_mtok=15),  # no cached price
        routes_pb2.Price(),
    ):
        model = routes_pb2.Model(
            name="m", provider=routes_pb2.PROVIDER_OPENAI, endpoint="http://h/v1", price=price
        )
        facts = ModelFacts(model, Origin.parse(model.endpoint))
        assert facts.name == "m" and facts.provider == "openai" and not facts.limited
        for usage in (Usage(10, 0, 5), Usage(100, 40, 7, 3), Usage(5, 9, 0)):
            assert facts.cost(usage) == pytest.approx(cost_of(usage, price))


def test_spend_without_a_reservation_counts_only_under_a_budget() -> None:
    gate = BudgetGate()
    gate.spent(0.5)  # no state: nothing to count against
    assert gate.unreported == 0.0
    gate.update(budget_pb2.BudgetState(team="t", allowance=1.0))
    gate.spent(0.25)
    assert gate.unreported == 0.25 and gate.headroom() == pytest.approx(0.75)


def _request(word: str, extra: bytes = b"") -> bytes:
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"%s"}]}' % word.encode()
    return b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n%scontent-length: %d\r\n\r\n%s" % (
        extra,
        len(body),
        body,
    )


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    seen = b""
    async with asyncio.timeout(5):
        while marker not in seen:
            chunk = await reader.read(65536)
            if not chunk:
                break
            seen += chunk
    return seen


async def test_request_sent_while_one_is_in_flight_waits_its_turn(
    make_sidecar: Any, records: Any
) -> None:
    """Reading is no longer paused per request: a request that arrives while the
    previous one is in flight is held, unparsed, and answered after it, in order."""
    sidecar = await make_sidecar()
    host, port = sidecar.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(_request("slow", b"x-fake-latency-ms: 300\r\n"))
    await asyncio.sleep(0.1)  # the first is upstream now
    writer.write(_request("second")[:40])  # half a request head...
    await asyncio.sleep(0.05)
    writer.write(_request("second")[40:] + _request("third"))  # ...the rest, and one more
    seen = await _read_until(reader, b"echo: third")
    assert seen.count(b"HTTP/1.1 200") == 3
    assert seen.index(b"echo: slow") < seen.index(b"echo: second") < seen.index(b"echo: third")
    writer.write(_request("fourth"))  # still a good keep-alive connection
    assert b"echo: fourth" in await _read_until(reader, b"echo: fourth")
    writer.close()
    assert len(records(sidecar)) == 4


async def test_half_closed_client_still_gets_its_answer(make_sidecar: Any) -> None:
    sidecar = await make_sidecar()
    host, port = sidecar.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(_request("bye", b"x-fake-latency-ms: 100\r\n"))
    writer.write_eof()  # done sending; still reading
    async with asyncio.timeout(5):
        data = await reader.read()  # everything until the sidecar closes
    assert data.startswith(b"HTTP/1.1 200") and b"echo: bye" in data
    writer.close()


def test_sse_parser_gives_the_same_events_however_the_bytes_are_split() -> None:
    from switchman_sidecar.adapters.sse import SseParser

    stream = (
        b'data: {"a":1}\n\nevent: ping\ndata: y\n\n: comment\n\ndata: a\ndata: b\n\n'
        b"data:tight\n\nevent: done\n\n\n\ndata: x\r\n\r\nid: 3\ndata: z\n\n"
        + "data: héllo\n\n".encode()
        + b"data: [DONE]\n\ndata: partial"
    )
    expected = [
        ("", '{"a":1}'),
        ("ping", "y"),
        ("", "a\nb"),
        ("", "tight"),
        ("done", ""),
        ("", "x"),
        ("", "z"),
        ("", "héllo"),
        ("", "[DONE]"),
    ]
    whole = SseParser()
    assert whole.feed(stream) == expected and whole.pending
    for size in (1, 2, 3, 7, 16):
        parser = SseParser()
        events = [e for i in range(0, len(stream), size) for e in parser.feed(stream[i : i + size])]
        assert events == expected, size
        assert parser.pending  # "data: partial" waits for its blank line
