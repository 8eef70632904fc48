"""The official anthropic SDK against the sidecar's /v1/messages, any provider behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import pytest

from switchman_fake import FakeUpstream
from switchman_protocol.v1 import usage_pb2
from switchman_sidecar.main import Sidecar

TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture
async def claude(sidecar: Sidecar) -> AsyncIterator[Callable[..., anthropic.AsyncAnthropic]]:
    clients: list[anthropic.AsyncAnthropic] = []

    def factory(**headers: str) -> anthropic.AsyncAnthropic:
        c = anthropic.AsyncAnthropic(
            base_url=sidecar.url,
            api_key="unused",
            default_headers=headers,
            max_retries=0,
            timeout=10,
        )
        clients.append(c)
        return c

    yield factory
    for c in clients:
        await c.close()


@pytest.mark.parametrize("target", ["claude", "gpt-4o", "gemini"])
async def test_messages_non_streamed(
    claude: Callable[..., anthropic.AsyncAnthropic],
    sidecar: Sidecar,
    fake: FakeUpstream,
    records: Callable[[Sidecar], list[Any]],
    target: str,
) -> None:
    msg = await claude().messages.create(
        model=target,
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hello there"}],
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "echo: hello there"
    assert msg.stop_reason == "end_turn"
    [rec] = records(sidecar)
    assert msg.usage.output_tokens == rec.output_tokens == 3
    assert rec.outcome == usage_pb2.OUTCOME_SUCCESS
    sent = fake.received[-1]
    if target == "claude":
        assert sent.path == "/v1/messages" and sent.body["system"] == "be brief"
        assert sent.headers["x-api-key"] == "sk-secret-claude"
    elif target == "gpt-4o":
        assert sent.body["messages"][0] == {"role": "system", "content": "be brief"}


@pytest.mark.parametrize("target", ["claude", "gpt-4o", "gemini"])
async def test_messages_streamed_with_tool_use(
    claude: Callable[..., anthropic.AsyncAnthropic],
    sidecar: Sidecar,
    records: Callable[[Sidecar], list[Any]],
    target: str,
) -> None:
    c = claude(**{"x-fake-tool-call": "get_weather", "x-fake-tool-args": '{"city": "Oslo"}'})
    async with c.messages.stream(
        model=target,
        max_tokens=100,
        tools=TOOLS,
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        events = [ev.type async for ev in stream]
        final = await stream.get_final_message()
    assert events[0] == "message_start"
    tool = [b for b in final.content if b.type == "tool_use"]
    assert tool and tool[0].name == "get_weather" and tool[0].input == {"city": "Oslo"}
    assert final.stop_reason == "tool_use"
    [rec] = records(sidecar)
    assert rec.streamed and rec.output_tokens == final.usage.output_tokens > 0


async def test_messages_streamed_text(
    claude: Callable[..., anthropic.AsyncAnthropic], sidecar: Sidecar
) -> None:
    async with claude().messages.stream(
        model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "echo: stream me"


async def test_messages_tool_result_round_trip(
    claude: Callable[..., anthropic.AsyncAnthropic], fake: FakeUpstream
) -> None:
    msg = await claude().messages.create(
        model="gpt-4o",
        max_tokens=50,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "rainy"}],
            },
        ],
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "echo: rainy"
    sent = fake.received[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "tool_call_id": "t1", "content": "rainy"}


async def test_sync_anthropic_client(sidecar: Sidecar) -> None:
    def call() -> str:
        with anthropic.Anthropic(base_url=sidecar.url, api_key="x", max_retries=0, timeout=10) as c:
            msg = c.messages.create(
                model="claude", max_tokens=10, messages=[{"role": "user", "content": "sync"}]
            )
            block = msg.content[0]
            return block.text if block.type == "text" else ""

    assert await asyncio.to_thread(call) == "echo: sync"


async def test_messages_errors_are_anthropic_shaped(
    claude: Callable[..., anthropic.AsyncAnthropic],
) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        await claude().messages.create(
            model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.body["type"] == "error"  # type: ignore[index]
    assert err.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
