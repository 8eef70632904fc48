"""Per-model RPM/TPM limits: local token buckets, fallback past a limited
model, 429 + Retry-After in the API's error shape when nothing is left."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

from switchman_protocol.v1 import routes_pb2, usage_pb2
from switchman_sidecar.ratelimit import RateLimiter, TokenBucket

MSG = [{"role": "user", "content": "hi"}]


def limited_model(name: str, rpm: int = 0, tpm: int = 0) -> routes_pb2.Model:
    m = routes_pb2.Model(name=name)
    m.limits.rpm = rpm
    m.limits.tpm = tpm
    return m


def test_token_bucket_refills_at_the_per_minute_rate() -> None:
    b = TokenBucket(60, now=0.0)  # one per second, burst 60
    assert b.wait_s(60, 0.0) == 0.0
    b.take(60, 0.0)
    assert b.wait_s(1, 0.0) == pytest.approx(1.0)
    assert b.wait_s(1, 0.5) == pytest.approx(0.5)
    assert b.wait_s(1, 1.0) == 0.0
    assert b.wait_s(1000, 1.0) == pytest.approx(59.0)  # capped at the capacity


def test_rpm_limits_requests_and_recovers() -> None:
    limiter = RateLimiter()
    m = limited_model("m", rpm=2)
    assert limiter.acquire(m, 10, 0.0) == 0.0
    assert limiter.acquire(m, 10, 0.0) == 0.0
    assert limiter.acquire(m, 10, 0.0) == pytest.approx(30.0)  # 2/min: one per 30 s
    assert limiter.acquire(m, 10, 30.0) == 0.0
    assert limiter.acquire(routes_pb2.Model(name="free"), 10**9, 0.0) == 0.0


def test_tpm_is_settled_with_the_real_usage() -> None:
    limiter = RateLimiter()
    m = limited_model("m", tpm=600)  # 10 tokens per second
    assert limiter.acquire(m, 100, 0.0) == 0.0
    limiter.settle("m", 100, 700, 0.0)  # the answer was long: the bucket is at -100
    assert limiter.acquire(m, 100, 0.0) == pytest.approx(20.0)
    assert limiter.acquire(m, 100, 20.0) == 0.0


def test_changed_limits_rebuild_the_bucket() -> None:
    limiter = RateLimiter()
    assert limiter.acquire(limited_model("m", rpm=1), 1, 0.0) == 0.0
    assert limiter.acquire(limited_model("m", rpm=1), 1, 0.0) > 0
    assert limiter.acquire(limited_model("m", rpm=100), 1, 0.0) == 0.0


def table(fake: Any, model_for: Any, **limits: Any) -> dict[str, Any]:
    return {
        "team": "team-a",
        "models": [
            model_for("primary", "PROVIDER_OPENAI", f"{fake.url}/v1", limits=limits),
            model_for("backup", "PROVIDER_ANTHROPIC", fake.url),
        ],
        "fallbacks": [{"model": "primary", "fallbacks": ["backup"]}],
    }


async def test_limited_model_falls_back(
    make_sidecar: Any, fake: Any, model_for: Any, sdk: Any
) -> None:
    sidecar = await make_sidecar(table(fake, model_for, rpm=1))
    client = sdk(sidecar)
    first = await client.chat.completions.with_raw_response.create(model="primary", messages=MSG)
    assert first.headers["x-switchman-model"] == "primary"
    second = await client.chat.completions.with_raw_response.create(model="primary", messages=MSG)
    assert second.headers["x-switchman-model"] == "backup"
    assert second.headers["x-switchman-tried"] == "primary:rate-limited"


async def test_nothing_left_is_a_429_with_retry_after(
    make_sidecar: Any, fake: Any, model_for: Any, sdk: Any, records: Any
) -> None:
    only = {
        "team": "team-a",
        "models": [model_for("primary", "PROVIDER_OPENAI", f"{fake.url}/v1", limits={"rpm": 2})],
    }
    sidecar = await make_sidecar(only)
    client = sdk(sidecar).with_options(max_retries=0)
    for _ in range(2):
        await client.chat.completions.create(model="primary", messages=MSG)
    sent = len(fake.received)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="primary", messages=MSG)
    err = caught.value
    assert err.status_code == 429
    assert 1 <= int(err.response.headers["retry-after"]) <= 30
    body = err.response.json()["error"]
    assert body["code"] == "rate_limit_exceeded" and "primary" in body["message"]
    assert len(fake.received) == sent  # nothing went upstream
    assert records(sidecar)[-1].outcome == usage_pb2.OUTCOME_REJECTED
    # The Anthropic API gets its own error shape.
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=5) as http:
        r = await http.post(
            "/v1/messages", json={"model": "primary", "max_tokens": 10, "messages": MSG}
        )
    assert r.status_code == 429 and r.headers["retry-after"]
    assert r.json()["error"]["type"] == "rate_limit_error"
    claude = anthropic.AsyncAnthropic(base_url=sidecar.url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.RateLimitError):
        await claude.messages.create(model="primary", max_tokens=10, messages=MSG)  # type: ignore[arg-type]
    await claude.close()


async def test_tpm_counts_the_tokens_actually_used(
    make_sidecar: Any, fake: Any, model_for: Any, sdk: Any
) -> None:
    sidecar = await make_sidecar(table(fake, model_for, tpm=1000))
    client = sdk(sidecar, **{"x-fake-output-tokens": "2000"})
    first = await client.chat.completions.with_raw_response.create(model="primary", messages=MSG)
    assert first.headers["x-switchman-model"] == "primary"
    # 2,000 output tokens overdrew the 1,000-token bucket: the next one falls back.
    second = await client.chat.completions.with_raw_response.create(model="primary", messages=MSG)
    assert second.headers["x-switchman-model"] == "backup"
    assert "primary:rate-limited" in second.headers["x-switchman-tried"]
