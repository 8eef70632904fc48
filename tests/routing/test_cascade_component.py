"""Cascades through a real sidecar and the fake upstream, with the official OpenAI SDK."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import anthropic
import openai

from switchman_fake import FakeUpstream
from switchman_sidecar.main import Sidecar
from switchman_sidecar.usage import InMemoryUsageSink

PRICE_CHEAP = {"input_per_mtok": 0.1, "output_per_mtok": 0.4}
PRICE_STRONG = {"input_per_mtok": 5.0, "output_per_mtok": 20.0}


def _model(name: str, endpoint: str, price: dict[str, float], quality: float) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "PROVIDER_OPENAI",
        "upstream_model": f"{name}-upstream",
        "endpoint": endpoint,
        "credential": {"api_key": f"sk-{name}"},
        "price": price,
        "context_window": 128000,
        "quality": {"overall": quality},
    }


def table(
    fake: FakeUpstream, cheap_answer: str, check: str = "json", **extra: Any
) -> dict[str, Any]:
    steer = f"{fake.url}/_steer/content={quote(cheap_answer, safe='')}/v1"
    strong_answer = quote('{"answer": 42}', safe="")
    strong = f"{fake.url}/_steer/content={strong_answer}/v1"
    return {
        "team": "t",
        "models": [
            _model("cheap", steer, PRICE_CHEAP, 0.6),
            _model("strong", strong, PRICE_STRONG, 0.9),
        ],
        "default_strategy": "STRATEGY_COST",
        "cascade": {
            "enabled": True,
            "models": ["cheap", "strong"],
            "check": check,
            "threshold": 0.5,
        },
        "resilience": {"max_retries": 0, "per_try_timeout_ms": 5000},
        **extra,
    }


def sink(sidecar: Sidecar) -> InMemoryUsageSink:
    if sidecar.lane is not None:
        sidecar.lane.settle()  # the native lane's records follow its answers
    s = sidecar.sinks.sinks[0]
    assert isinstance(s, InMemoryUsageSink)
    return s


async def ask(sidecar: Sidecar, stream: bool = False) -> Any:
    client = openai.AsyncOpenAI(
        base_url=sidecar.url + "/v1", api_key="x", max_retries=0, timeout=10
    )
    try:
        return await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "give me JSON"}]
        )
    finally:
        await client.close()


async def test_cheap_answer_passing_the_check_is_kept(
    fake: FakeUpstream, start_sidecar: Callable[[dict[str, Any]], Awaitable[Sidecar]]
) -> None:
    sidecar = await start_sidecar(table(fake, '{"answer": 41}'))
    raw = await ask(sidecar)
    completion = raw.parse()
    assert completion.choices[0].message.content == '{"answer": 41}'
    assert raw.headers["x-switchman-model"] == "cheap"
    await sink(sidecar).wait(1)
    records = list(sink(sidecar).records)
    assert [r.model for r in records] == ["cheap"]
    assert not records[0].cascade_escalated


async def test_failed_check_escalates_and_every_attempt_is_counted(
    fake: FakeUpstream, start_sidecar: Callable[[dict[str, Any]], Awaitable[Sidecar]]
) -> None:
    sidecar = await start_sidecar(table(fake, "sorry, no JSON here"))
    raw = await ask(sidecar)
    assert raw.parse().choices[0].message.content == '{"answer": 42}'
    assert raw.headers["x-switchman-model"] == "strong"
    assert "cheap:cascade-rejected" in raw.headers["x-switchman-tried"]
    await sink(sidecar).wait(2)
    records = list(sink(sidecar).records)
    by_model = {r.model: r for r in records}
    assert set(by_model) == {"cheap", "strong"}
    assert by_model["cheap"].cascade_escalated and by_model["cheap"].cost > 0
    assert not by_model["strong"].cascade_escalated
    assert {r.request_id for r in records} == {raw.headers["x-switchman-request-id"]}


async def test_self_check_asks_the_model_and_counts_the_grading_call(
    fake: FakeUpstream, start_sidecar: Callable[[dict[str, Any]], Awaitable[Sidecar]]
) -> None:
    # The fake answers every call to "cheap" with "0.2": as an answer, and as its grade.
    sidecar = await start_sidecar(table(fake, "0.2", check="self_check"))
    raw = await ask(sidecar)
    assert raw.headers["x-switchman-model"] == "strong"
    await sink(sidecar).wait(3)
    reasons = sorted((r.model, r.reason.split("/")[-1]) for r in sink(sidecar).records)
    assert ("cheap", "cascade-check") in reasons and ("cheap", "cascade") in reasons
    text = sidecar.metrics.render().decode()
    for kind in ("cascade", "cascade-check"):
        assert f'switchman_extra_attempts_total{{kind="{kind}",model="cheap"}} 1.0' in text
    sidecar2 = await start_sidecar(table(fake, "0.9", check="self_check"))
    assert (await ask(sidecar2)).headers["x-switchman-model"] == "cheap"


async def test_output_budget_is_enforced_on_the_upstream_request(
    fake: FakeUpstream, start_sidecar: Callable[[dict[str, Any]], Awaitable[Sidecar]]
) -> None:
    t = table(
        fake,
        '{"a": 1}',
        rules=[
            {"name": "short", "when": "true", "strategy": "STRATEGY_COST", "max_output_tokens": 64}
        ],
    )
    del t["cascade"]
    sidecar = await start_sidecar(t)
    raw = await ask(sidecar)
    assert raw.headers["x-switchman-reason"] == "rule:short/strategy:cost"
    seen = fake.received[-1]
    assert seen.body.get("max_tokens") == 64 or seen.body.get("max_completion_tokens") == 64


def ensemble_table(fake: FakeUpstream, answers: dict[str, str], aggregate: str) -> dict[str, Any]:
    models = [
        _model(name, f"{fake.url}/_steer/content={quote(text, safe='')}/v1", PRICE_CHEAP, 0.7)
        for name, text in answers.items()
    ]
    return {
        "team": "t",
        "models": models,
        "rules": [
            {
                "name": "high-stakes",
                "when": 'request.headers["x-stakes"] == "high"',
                "route_to": "a",
                "ensemble": {"models": list(answers), "aggregate": aggregate, "judge_model": "j"},
            }
        ],
        "resilience": {"max_retries": 0, "per_try_timeout_ms": 5000},
    }


async def ask_high_stakes(sidecar: Sidecar) -> Any:
    client = openai.AsyncOpenAI(
        base_url=sidecar.url + "/v1",
        api_key="x",
        max_retries=0,
        timeout=10,
        default_headers={"x-stakes": "high"},
    )
    try:
        return await client.chat.completions.with_raw_response.create(
            model="a", messages=[{"role": "user", "content": "what is 6 x 7?"}]
        )
    finally:
        await client.close()


async def test_ensemble_vote_returns_the_majority_and_counts_every_answer(
    fake: FakeUpstream, start_sidecar: Callable[[dict[str, Any]], Awaitable[Sidecar]]
) -> None:
    answers = {"a": "The answer is 41", "b": "answer: 42", "c": "Final answer: 42", "j": "2"}
    sidecar = await start_sidecar(ensemble_table(fake, answers, "vote"))
    raw = await ask_high_stakes(sidecar)
    assert raw.parse().choices[0].message.content == "answer: 42"
    assert raw.headers["x-switchman-model"] == "b"
    await sink(sidecar).wait(4)
    records = list(sink(sidecar).records)
    assert sorted(r.model for r in records) == ["a", "b", "c", "j"]  # every answer is paid for
    assert {r.request_id for r in records} == {raw.headers["x-switchman-request-id"]}
    # Every member's answer is feedback: agreeing with the majority scores 1.
    scores = {f.model: (f.score, f.source) for f in sidecar.feedback.recent}
    assert scores == {
        "a": (0.0, "ensemble"),  # 41
        "b": (1.0, "ensemble"),  # 42, returned
        "c": (1.0, "ensemble"),  # 42
        "j": (0.0, "ensemble"),  # 2
    }


async def test_ensemble_judge_picks(
    fake: FakeUpstream, start_sidecar: Callable[[dict[str, Any]], Awaitable[Sidecar]]
) -> None:
    # Three different answers; the judge ("j" always says "3") picks the third.
    answers = {"a": "x", "b": "y", "c": "z", "j": "3"}
    table = ensemble_table(fake, answers, "judge")
    table["rules"][0]["ensemble"]["models"] = ["a", "b", "c"]
    sidecar = await start_sidecar(table)
    raw = await ask_high_stakes(sidecar)
    assert raw.parse().choices[0].message.content == "z"
    await sink(sidecar).wait(4)
    reasons = sorted((r.model, r.reason) for r in sink(sidecar).records)
    assert ("j", "ensemble-judge") in reasons
    assert len(reasons) == 4  # three answers and the judge's call
    scores = {f.model: (f.score, f.source) for f in sidecar.feedback.recent}
    assert scores == {"a": (0.0, "judge"), "b": (0.0, "judge"), "c": (1.0, "judge")}


async def test_a_streamed_high_stakes_request_streams_the_ensemble_pick(
    fake: FakeUpstream, start_sidecar: Callable[[dict[str, Any]], Awaitable[Sidecar]]
) -> None:
    """The members answer whole (nothing is streamed before the vote); the pick
    goes to the client as a stream, with the usage chunk it asked for."""
    answers = {"a": "The answer is 41", "b": "answer: 42", "c": "Final answer: 42", "j": "2"}
    sidecar = await start_sidecar(ensemble_table(fake, answers, "vote"))
    client = openai.AsyncOpenAI(
        base_url=sidecar.url + "/v1",
        api_key="x",
        max_retries=0,
        timeout=10,
        default_headers={"x-stakes": "high"},
    )
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="a",
            messages=[{"role": "user", "content": "what is 6 x 7?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in raw.parse()]
    finally:
        await client.close()
    assert raw.headers["x-switchman-model"] == "b"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "answer: 42"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(r.body.get("stream") is None for r in fake.received)  # members answered whole
    await sink(sidecar).wait(4)
    records = list(sink(sidecar).records)
    assert sorted(r.model for r in records) == ["a", "b", "c", "j"]
    (picked,) = [r for r in records if r.model == "b"]
    assert picked.streamed and picked.output_tokens == chunks[-1].usage.completion_tokens


async def test_a_streamed_high_stakes_request_through_the_anthropic_api(
    fake: FakeUpstream, start_sidecar: Callable[[dict[str, Any]], Awaitable[Sidecar]]
) -> None:
    answers = {"a": "The answer is 41", "b": "answer: 42", "c": "Final answer: 42", "j": "2"}
    sidecar = await start_sidecar(ensemble_table(fake, answers, "vote"))
    async with (
        anthropic.AsyncAnthropic(
            base_url=sidecar.url,
            api_key="x",
            max_retries=0,
            timeout=10,
            default_headers={"x-stakes": "high"},
        ) as client,
        client.messages.stream(
            model="a", max_tokens=100, messages=[{"role": "user", "content": "what is 6 x 7?"}]
        ) as stream,
    ):
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "answer: 42"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
