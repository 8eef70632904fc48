"""The official openai SDK against the sidecar, with the fake upstream behind it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from switchman_fake import FakeUpstream
from switchman_protocol.v1 import usage_pb2
from switchman_sidecar.main import Sidecar


async def test_non_streamed_chat_reaches_openai_with_the_table_key(
    sdk: Callable[..., openai.AsyncOpenAI],
    records: Callable[[Sidecar], list[Any]],
    sidecar: Sidecar,
    fake: FakeUpstream,
) -> None:
    c = sdk(sidecar)
    raw = await c.chat.completions.with_raw_response.create(
        model="best", messages=[{"role": "user", "content": "hello world"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello world"
    assert raw.headers["x-switchman-model"] == "gpt-4o"
    assert raw.headers["x-switchman-provider"] == "openai"
    assert raw.headers["x-switchman-reason"] == "alias"
    sent = fake.received[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-4o-upstream"
    assert sent.headers["authorization"] == "Bearer sk-secret-gpt-4o"
    [rec] = records(sidecar)
    assert rec.model == "gpt-4o" and rec.outcome == usage_pb2.OUTCOME_SUCCESS
    assert rec.input_tokens == completion.usage.prompt_tokens  # type: ignore[union-attr]
    assert rec.output_tokens == 3 and not rec.estimated
    expected = (rec.input_tokens * 2.5 + 3 * 10.0) / 1e6
    assert rec.cost == pytest.approx(expected)
    assert float(raw.headers["x-switchman-cost"]) == pytest.approx(expected)


async def test_sync_client_works(sidecar: Sidecar) -> None:
    def call() -> str | None:
        with openai.OpenAI(
            base_url=sidecar.url + "/v1", api_key="x", max_retries=0, timeout=10
        ) as c:
            answer = c.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "sync"}]
            )
            return answer.choices[0].message.content

    assert await asyncio.to_thread(call) == "echo: sync"


async def test_streamed_chat_hides_the_usage_chunk_it_added(
    sdk: Callable[..., openai.AsyncOpenAI],
    records: Callable[[Sidecar], list[Any]],
    sidecar: Sidecar,
    fake: FakeUpstream,
) -> None:
    c = sdk(sidecar)
    stream = await c.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "echo: one two three"
    assert all(ch.choices for ch in chunks), "the client did not ask for the usage chunk"
    assert all(ch.usage is None for ch in chunks)
    assert fake.received[-1].body["stream_options"] == {"include_usage": True}
    [rec] = records(sidecar)
    assert rec.streamed and rec.output_tokens == 4 and not rec.estimated and rec.cost > 0


async def test_streamed_chat_shows_usage_when_asked(
    sdk: Callable[..., openai.AsyncOpenAI],
    records: Callable[[Sidecar], list[Any]],
    sidecar: Sidecar,
) -> None:
    c = sdk(sidecar)
    stream = await c.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "a b"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert records(sidecar)[0].output_tokens == 3


@pytest.mark.parametrize("target", ["gpt-4o", "claude", "gemini", "azure", "local"])
async def test_tool_calls_round_trip_through_every_provider(
    sdk: Callable[..., openai.AsyncOpenAI],
    records: Callable[[Sidecar], list[Any]],
    sidecar: Sidecar,
    fake: FakeUpstream,
    target: str,
) -> None:
    c = sdk(sidecar, **{"x-fake-tool-call": "get_weather", "x-fake-tool-args": '{"city": "Paris"}'})
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Paris?"}]
    first = await c.chat.completions.create(model=target, messages=messages, tools=tools)  # type: ignore[arg-type]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Paris"
    }
    # streamed: deltas accumulate to the same call
    stream = await c.chat.completions.create(
        model=target, messages=messages, tools=tools, stream=True
    )  # type: ignore[arg-type]
    args = ""
    names = []
    async for chunk in stream:
        for d in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            if d.function and d.function.name:
                names.append(d.function.name)
            args += (d.function.arguments or "") if d.function else ""
    assert names == ["get_weather"] and json.loads(args) == {"city": "Paris"}
    # the tool result goes back in the provider's own shape
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    fake.clear()
    plain = sdk(sidecar)
    answer = await plain.chat.completions.create(model=target, messages=messages, tools=tools)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "echo: sunny"
    sent = fake.received[-1].body
    if target == "claude":
        assert sent["messages"][-1]["content"][0]["type"] == "tool_result"
        assert sent["messages"][-2]["content"][-1]["type"] == "tool_use"
        assert sent["tools"][0]["input_schema"]["properties"]["city"] == {"type": "string"}
    elif target == "gemini":
        assert sent["contents"][-1]["parts"][0]["functionResponse"]["name"] == "get_weather"
        assert sent["contents"][-2]["parts"][-1]["functionCall"]["args"] == {"city": "Paris"}
    else:
        assert sent["messages"][-1]["role"] == "tool"
    assert len(records(sidecar)) == 3


async def test_embeddings_base64_and_float(
    sdk: Callable[..., openai.AsyncOpenAI],
    records: Callable[[Sidecar], list[Any]],
    sidecar: Sidecar,
    fake: FakeUpstream,
) -> None:
    c = sdk(sidecar)
    emb = await c.embeddings.create(model="gpt-4o", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8
    emb = await c.embeddings.create(model="gpt-4o", input="x", encoding_format="float")
    assert len(emb.data[0].embedding) == 8
    assert fake.received[-1].path == "/v1/embeddings"
    assert all(r.input_tokens > 0 for r in records(sidecar))


async def test_embeddings_skip_providers_without_the_api(
    sdk: Callable[..., openai.AsyncOpenAI], sidecar: Sidecar
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        await sdk(sidecar).embeddings.create(model="claude", input="x")
    assert "no-embeddings-api" in str(err.value)


async def test_responses_passthrough(
    sdk: Callable[..., openai.AsyncOpenAI],
    records: Callable[[Sidecar], list[Any]],
    sidecar: Sidecar,
    fake: FakeUpstream,
) -> None:
    c = sdk(sidecar)
    resp = await c.responses.create(model="gpt-4o", input="hi there")
    assert resp.output_text == "echo: hi there"
    stream = await c.responses.create(model="azure", input="streamed please", stream=True)
    deltas = [ev.delta async for ev in stream if ev.type == "response.output_text.delta"]
    assert "".join(deltas) == "echo: streamed please"
    assert fake.received[-1].path == "/openai/responses"
    recs = records(sidecar)
    assert [r.streamed for r in recs] == [False, True] and all(r.output_tokens for r in recs)


async def test_models_lists_models_and_aliases(
    sdk: Callable[..., openai.AsyncOpenAI], sidecar: Sidecar
) -> None:
    page = await sdk(sidecar).models.list()
    ids = [m.id for m in page.data]
    assert ids[:5] == ["gpt-4o", "claude", "gemini", "azure", "local"] and "best" in ids
