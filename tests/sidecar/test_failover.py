"""Retries, fallbacks, timeouts, context-window fallback, circuit breaking and
stream failures, driven by the fake upstream's steering."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import openai
import pytest

from switchman_fake import FakeUpstream
from switchman_protocol.v1 import usage_pb2
from switchman_sidecar.main import Sidecar

SdkFactory = Callable[..., openai.AsyncOpenAI]
Records = Callable[[Sidecar], list[Any]]
MSG: list[Any] = [{"role": "user", "content": "ping"}]


def two_models(
    fake: FakeUpstream, model_for: Callable[..., dict[str, Any]], steer: str, **res: Any
) -> dict[str, Any]:
    resilience = {
        "max_retries": 1,
        "backoff_base_ms": 1,
        "backoff_max_ms": 5,
        "per_try_timeout_ms": 2000,
    }
    resilience.update(res)
    return {
        "team": "team-a",
        "models": [
            model_for("primary", "PROVIDER_OPENAI", f"{fake.url}/_steer/{steer}/v1"),
            model_for("backup", "PROVIDER_ANTHROPIC", fake.url),
        ],
        "fallbacks": [{"model": "primary", "fallbacks": ["backup"]}],
        "resilience": resilience,
    }


async def test_retry_then_success_on_the_same_model(
    sidecar: Sidecar, sdk: SdkFactory, records: Records
) -> None:
    c = sdk(sidecar, **{"x-fake-fail-first": "2", "x-fake-key": "retry-1"})
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    assert raw.headers["x-switchman-model"] == "gpt-4o"
    assert raw.headers["x-switchman-tried"] == "gpt-4o:http-503,gpt-4o:http-503"
    assert raw.headers["x-switchman-fallbacks"] == "0"
    assert records(sidecar)[0].outcome == usage_pb2.OUTCOME_SUCCESS


async def test_fallback_chain_after_5xx(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any, sdk: SdkFactory, records: Records
) -> None:
    sidecar = await make_sidecar(two_models(fake, model_for, "status=500"))
    raw = await sdk(sidecar).chat.completions.with_raw_response.create(
        model="primary", messages=MSG
    )
    assert raw.parse().choices[0].message.content == "echo: ping"
    assert raw.headers["x-switchman-model"] == "backup"
    assert raw.headers["x-switchman-provider"] == "anthropic"
    assert raw.headers["x-switchman-fallbacks"] == "1"
    [rec] = records(sidecar)
    assert rec.model == "backup" and rec.fallbacks == 1


async def test_429_with_long_retry_after_falls_back_without_waiting(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any, sdk: SdkFactory
) -> None:
    sidecar = await make_sidecar(two_models(fake, model_for, "status=429,retry-after=120"))
    raw = await sdk(sidecar).chat.completions.with_raw_response.create(
        model="primary", messages=MSG
    )
    assert raw.headers["x-switchman-model"] == "backup"
    assert raw.headers["x-switchman-tried"] == "primary:429"  # not retried: Retry-After honoured


async def test_429_on_the_last_model_is_passed_on_with_retry_after(
    sidecar: Sidecar, sdk: SdkFactory
) -> None:
    c = sdk(sidecar, **{"x-fake-status": "429", "x-fake-retry-after": "7"})
    with pytest.raises(openai.RateLimitError) as err:
        await c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert err.value.response.headers["retry-after"] == "7"


async def test_429_with_short_retry_after_is_retried(sidecar: Sidecar, sdk: SdkFactory) -> None:
    c = sdk(
        sidecar,
        **{
            "x-fake-status": "429",
            "x-fake-retry-after": "0",
            "x-fake-fail-first": "1",
            "x-fake-key": "r429",
        },
    )
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    assert raw.headers["x-switchman-tried"] == "gpt-4o:429"
    assert raw.headers["x-switchman-model"] == "gpt-4o"


async def test_per_try_timeout_falls_back(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any, sdk: SdkFactory
) -> None:
    table = two_models(fake, model_for, "latency-ms=3000", per_try_timeout_ms=1000, max_retries=0)
    sidecar = await make_sidecar(table)
    raw = await sdk(sidecar).chat.completions.with_raw_response.create(
        model="primary", messages=MSG
    )
    assert raw.headers["x-switchman-model"] == "backup"
    assert raw.headers["x-switchman-tried"] == "primary:timeout"


async def test_total_timeout_gives_504(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any, sdk: SdkFactory
) -> None:
    table = two_models(
        fake, model_for, "latency-ms=3000", per_try_timeout_ms=5000, total_timeout_ms=200
    )
    sidecar = await make_sidecar(table)
    with pytest.raises(openai.APIStatusError) as err:
        await sdk(sidecar).chat.completions.create(model="primary", messages=MSG)
    assert err.value.status_code == 504


async def test_connect_error_falls_back(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any, sdk: SdkFactory
) -> None:
    table = two_models(fake, model_for, "x=1")
    table["models"][0]["endpoint"] = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    sidecar = await make_sidecar(table)
    raw = await sdk(sidecar).chat.completions.with_raw_response.create(
        model="primary", messages=MSG
    )
    assert raw.headers["x-switchman-model"] == "backup"
    assert raw.headers["x-switchman-tried"].startswith("primary:connect")


async def test_context_window_fallback(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any, sdk: SdkFactory
) -> None:
    table = two_models(fake, model_for, "x=1")
    table["models"][0]["context_window"] = 50
    sidecar = await make_sidecar(table)
    long = [{"role": "user", "content": "word " * 200}]
    raw = await sdk(sidecar).chat.completions.with_raw_response.create(
        model="primary", messages=long
    )
    assert raw.headers["x-switchman-model"] == "backup"
    assert "primary:context-window" in raw.headers["x-switchman-tried"]
    assert not any(r.path.startswith("/v1/chat") for r in fake.received)  # primary never called


async def test_upstream_context_error_falls_back(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any, sdk: SdkFactory
) -> None:
    steer = "status=400,error-message=This%20model%27s%20maximum%20context%20length%20is%208192"
    sidecar = await make_sidecar(two_models(fake, model_for, steer))
    raw = await sdk(sidecar).chat.completions.with_raw_response.create(
        model="primary", messages=MSG
    )
    assert raw.headers["x-switchman-model"] == "backup"
    assert raw.headers["x-switchman-tried"] == "primary:context-window"


async def test_plain_400_is_returned_not_retried(
    sidecar: Sidecar, sdk: SdkFactory, fake: FakeUpstream
) -> None:
    c = sdk(sidecar, **{"x-fake-status": "400", "x-fake-error-message": "bad temperature"})
    with pytest.raises(openai.BadRequestError) as err:
        await c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert "bad temperature" in str(err.value)
    assert len(fake.received) == 1


async def test_circuit_breaker_ejects_a_failing_endpoint(
    make_sidecar: Any, fake: FakeUpstream, model_for: Any, sdk: SdkFactory
) -> None:
    table = two_models(
        fake,
        model_for,
        "status=503",
        max_retries=0,
        circuit_breaker={"consecutive_failures": 2, "ejection_ms": 60000, "half_open_requests": 1},
    )
    sidecar = await make_sidecar(table)
    c = sdk(sidecar)
    for _ in range(2):
        raw = await c.chat.completions.with_raw_response.create(model="primary", messages=MSG)
        assert raw.headers["x-switchman-tried"] == "primary:http-503"
    before = sum(1 for r in fake.received if r.path.endswith("/chat/completions"))
    raw = await c.chat.completions.with_raw_response.create(model="primary", messages=MSG)
    assert raw.headers["x-switchman-tried"] == "primary:circuit-open"
    assert raw.headers["x-switchman-model"] == "backup"
    assert sum(1 for r in fake.received if r.path.endswith("/chat/completions")) == before


@pytest.mark.parametrize("steer", ["status=503", "cut-after=0"])
async def test_stream_failing_before_first_byte_fails_over_invisibly(
    make_sidecar: Any,
    fake: FakeUpstream,
    model_for: Any,
    sdk: SdkFactory,
    records: Records,
    steer: str,
) -> None:
    sidecar = await make_sidecar(two_models(fake, model_for, steer, max_retries=0))
    stream = await sdk(sidecar).chat.completions.create(model="primary", messages=MSG, stream=True)
    text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text == "echo: ping"
    [rec] = records(sidecar)
    assert rec.model == "backup" and rec.outcome == usage_pb2.OUTCOME_SUCCESS


async def test_stream_failing_mid_way_ends_with_an_error_event(
    sidecar: Sidecar, sdk: SdkFactory, records: Records
) -> None:
    c = sdk(sidecar, **{"x-fake-cut-after": "4", "x-fake-output-tokens": "20"})
    stream = await c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    got = []
    with pytest.raises(openai.APIError) as err:
        async for chunk in stream:
            got.append(chunk)
    assert "stream broke" in str(err.value)
    assert len(got) == 4
    [rec] = records(sidecar)
    assert rec.outcome == usage_pb2.OUTCOME_UPSTREAM_ERROR
    assert rec.estimated and rec.output_tokens > 0 and rec.cost > 0


async def test_client_abort_is_charged_for_what_was_streamed(
    sidecar: Sidecar, fake: FakeUpstream, records: Records, wait_records: Any
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(sidecar.url.rsplit(":", 1)[1]))
    body = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hello"}]}'
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"x-fake-drip-ms: 50\r\nx-fake-output-tokens: 200\r\ncontent-length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    await writer.drain()
    seen = b""
    async with asyncio.timeout(5):
        while seen.count(b"data: ") < 3:
            seen += await reader.read(4096)
    writer.close()
    await wait_records(sidecar, 1)
    [rec] = records(sidecar)
    assert rec.outcome == usage_pb2.OUTCOME_CLIENT_ABORTED
    assert rec.estimated and 0 < rec.output_tokens < 200
    # the sidecar keeps serving
    async with openai.AsyncOpenAI(base_url=sidecar.url + "/v1", api_key="x", max_retries=0) as c:
        answer = await c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert answer.choices[0].message.content == "echo: ping"
