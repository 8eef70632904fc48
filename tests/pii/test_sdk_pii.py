"""End to end with the official SDKs (chat, messages, responses): personal
data leaves the pod redacted (checked at the fake upstream) and comes back
restored, streamed or not, in text and in tool calls; blocking and
route-to-compliant policies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import openai
import pytest

from switchman_fake import FakeUpstream
from switchman_sidecar.main import Sidecar
from switchman_sidecar.usage import InMemoryUsageSink

EMAIL = "grace.hopper@navy.example"
CARD = "4111 1111 1111 1111"
NAME = "Grace Hopper"
PROMPT = f"My name is {NAME}, mail {EMAIL} about card {CARD}"
Factory = Callable[..., Awaitable[Sidecar]]


def client(sidecar: Sidecar, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=sidecar.url + "/v1",
        api_key="x",
        default_headers=headers,
        max_retries=0,
        timeout=10,
    )


def upstream_saw(fake: FakeUpstream) -> str:
    return "\n".join(r.raw.decode() for r in fake.received)


def assert_clean(fake: FakeUpstream) -> None:
    seen = upstream_saw(fake)
    assert fake.received
    for value in (EMAIL, CARD, "Hopper", "4111"):
        assert value not in seen, value


@pytest.mark.parametrize("stream", [False, True])
async def test_chat_redacted_upstream_restored_for_the_app(
    pii_sidecar: Factory, fake: FakeUpstream, stream: bool
) -> None:
    sidecar = await pii_sidecar()
    async with client(sidecar) as c:
        messages: Any = [{"role": "user", "content": PROMPT}]
        if stream:
            s = await c.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
            text = "".join([ch.choices[0].delta.content or "" async for ch in s if ch.choices])
        else:
            raw = await c.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=messages
            )
            assert raw.headers["x-switchman-pii-count"] == "3"
            text = raw.parse().choices[0].message.content or ""
    assert text == f"echo: {PROMPT}"
    assert_clean(fake)
    assert "[EMAIL_ADDRESS_" in upstream_saw(fake) and "[PERSON_" in upstream_saw(fake)
    sink = sidecar.sinks.sinks[0]
    assert isinstance(sink, InMemoryUsageSink)
    await sink.wait(1)
    record = sink.records[0]
    assert dict(record.pii_counts) == {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1, "PERSON": 1}
    metrics = sidecar.metrics.render().decode()
    assert 'switchman_pii_entities_total{entity="CREDIT_CARD"} 1.0' in metrics
    assert EMAIL not in metrics and CARD not in metrics
    assert EMAIL not in str(record) and CARD not in str(record)


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_arguments_restored_with_json_escaping(
    pii_sidecar: Factory, fake: FakeUpstream, stream: bool
) -> None:
    sidecar = await pii_sidecar()
    tricky = 'Apt. 4, 12 "Quoted" Street'  # quotes must come back JSON-escaped
    prompt = f"ship to {tricky} for {EMAIL}"
    tools: Any = [
        {"type": "function", "function": {"name": "ship", "parameters": {"type": "object"}}}
    ]
    history: Any = [
        {"role": "user", "content": prompt},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c0",
                    "type": "function",
                    "function": {"name": "ship", "arguments": json.dumps({"to": EMAIL})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c0", "content": f"label printed for {EMAIL}"},
        {"role": "user", "content": prompt},
    ]
    async with client(sidecar, **{"x-fake-tool-call": "ship"}) as c:
        if stream:
            s = await c.chat.completions.create(
                model="gpt-4o", messages=history, tools=tools, stream=True
            )
            args = ""
            async for ch in s:
                for d in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
                    args += (d.function.arguments or "") if d.function else ""
        else:
            answer = await c.chat.completions.create(model="gpt-4o", messages=history, tools=tools)
            calls = answer.choices[0].message.tool_calls or []
            fn = getattr(calls[0], "function", None)
            args = fn.arguments if fn is not None else ""
    assert json.loads(args) == {"text": prompt}
    seen = upstream_saw(fake)
    assert EMAIL not in seen and "Quoted" not in seen


async def test_anthropic_sdk_messages_redacted_and_restored(
    pii_sidecar: Factory, fake: FakeUpstream
) -> None:
    sidecar = await pii_sidecar()
    async with anthropic.AsyncAnthropic(
        base_url=sidecar.url, api_key="x", max_retries=0, timeout=10
    ) as c:
        msg = await c.messages.create(
            model="claude",
            max_tokens=100,
            system=f"The user is {NAME}.",
            messages=[{"role": "user", "content": PROMPT}],
        )
    block = msg.content[0]
    assert getattr(block, "text", "") == f"echo: {PROMPT}"
    assert_clean(fake)


@pytest.mark.parametrize("provider_model", ["claude", "gpt-4o"])
async def test_anthropic_sdk_stream_restores_text_and_tool_input(
    pii_sidecar: Factory, fake: FakeUpstream, provider_model: str
) -> None:
    """Messages API streamed, to an Anthropic and to an OpenAI provider: the text
    deltas and the tool_use input (input_json_delta pieces, placeholders split
    across them) come back with the original values."""
    sidecar = await pii_sidecar()
    tools: Any = [{"name": "ship", "input_schema": {"type": "object", "properties": {}}}]
    async with anthropic.AsyncAnthropic(
        base_url=sidecar.url, api_key="x", max_retries=0, timeout=10
    ) as c:
        async with c.messages.stream(
            model=provider_model,
            max_tokens=100,
            messages=[{"role": "user", "content": PROMPT}],
        ) as stream:
            text = "".join([t async for t in stream.text_stream])
        async with c.messages.stream(
            model=provider_model,
            max_tokens=100,
            tools=tools,
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"x-fake-tool-call": "ship"},
        ) as stream:
            partial = "".join([ev.partial_json async for ev in stream if ev.type == "input_json"])
            final = await stream.get_final_message()
    assert text == f"echo: {PROMPT}"
    assert json.loads(partial) == {"text": PROMPT}
    (tool,) = [b for b in final.content if b.type == "tool_use"]
    assert tool.input == {"text": PROMPT}
    assert_clean(fake)


async def test_blocked_entity_is_an_openai_error_and_nothing_is_sent(
    pii_sidecar: Factory, fake: FakeUpstream
) -> None:
    sidecar = await pii_sidecar({"actions": {"CREDIT_CARD": "PII_ACTION_BLOCK"}})
    async with client(sidecar) as c:
        with pytest.raises(openai.BadRequestError) as err:
            await c.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": PROMPT}]
            )
    body: Any = err.value.body
    assert body["code"] == "pii_blocked" and "CREDIT_CARD" in body["message"]
    assert CARD not in body["message"]
    assert not fake.received


async def test_route_to_compliant_only_reaches_an_allowed_model(
    pii_sidecar: Factory, fake: FakeUpstream
) -> None:
    sidecar = await pii_sidecar(
        {
            "actions": {"CREDIT_CARD": "PII_ACTION_ROUTE_COMPLIANT"},
            "compliant_tags": ["self-hosted"],
        }
    )
    async with client(sidecar) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": PROMPT}]
        )
        assert raw.headers["x-switchman-model"] == "onprem"
        # no PII that needs compliance: the requested model answers
        plain = await c.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello there"}]
        )
        assert plain.headers["x-switchman-model"] == "gpt-4o"
    models = [
        json.loads(r.body)["model"] if isinstance(r.body, bytes) else r.body["model"]
        for r in fake.received
    ]
    assert models == ["onprem-upstream", "gpt-4o-upstream"]
    first = fake.received[0].raw.decode()
    assert CARD in first  # the compliant model may see the card...
    assert EMAIL not in first  # ...other entities are still redacted


# -- Responses API ------------------------------------------------------------
# Output text and function-call arguments restored, whole and streamed; events
# the restorer inserts keep the stream's sequence numbers consecutive.

R_PROMPT = f"My name is {NAME}, ship to {EMAIL}"
TOOLS: Any = [
    {
        "type": "function",
        "name": "ship",
        "parameters": {"type": "object", "properties": {}},
        "strict": False,
    }
]


def assert_clean_responses(fake: FakeUpstream) -> None:
    seen = upstream_saw(fake)
    assert fake.received
    assert EMAIL not in seen and "Hopper" not in seen
    assert "[EMAIL_ADDRESS_" in seen and "[PERSON_" in seen


def calls_of(response: Any) -> list[Any]:
    return [item for item in response.output if item.type == "function_call"]


async def test_function_call_arguments_restored_whole(
    pii_sidecar: Factory, fake: FakeUpstream
) -> None:
    sidecar = await pii_sidecar()
    async with client(sidecar, **{"x-fake-tool-call": "auto"}) as c:
        response = await c.responses.create(
            model="gpt-4o", input=[{"role": "user", "content": R_PROMPT}], tools=TOOLS
        )
    (call,) = calls_of(response)
    assert call.name == "ship"
    assert json.loads(call.arguments) == {"text": R_PROMPT}
    assert_clean_responses(fake)


async def test_function_call_arguments_restored_in_a_stream(
    pii_sidecar: Factory, fake: FakeUpstream
) -> None:
    sidecar = await pii_sidecar()
    async with (
        client(sidecar, **{"x-fake-tool-call": "auto"}) as c,
        c.responses.stream(
            model="gpt-4o", input=[{"role": "user", "content": R_PROMPT}], tools=TOOLS
        ) as stream,
    ):
        events = [ev async for ev in stream]
        final = await stream.get_final_response()
    deltas = "".join(
        ev.delta for ev in events if ev.type == "response.function_call_arguments.delta"
    )
    (done,) = [ev for ev in events if ev.type == "response.function_call_arguments.done"]
    # The fake cuts the arguments into 7-character deltas, so the placeholders
    # arrive split; the client gets whole values back, JSON-escaped.
    assert json.loads(deltas) == {"text": R_PROMPT}
    assert json.loads(done.arguments) == {"text": R_PROMPT}
    (item_done,) = [ev for ev in events if ev.type == "response.output_item.done"]
    assert json.loads(getattr(item_done.item, "arguments", "")) == {"text": R_PROMPT}
    (call,) = calls_of(final)
    assert json.loads(call.arguments) == {"text": R_PROMPT}
    seqs = [ev.sequence_number for ev in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert_clean_responses(fake)


@pytest.mark.parametrize("held_back", [False, True])
async def test_output_text_restored_in_a_stream(
    pii_sidecar: Factory, fake: FakeUpstream, held_back: bool
) -> None:
    """The answer echoes the prompt, placeholders included; with ``held_back``
    it ends in text that could start a placeholder, which the restorer holds
    until the part is done and then sends as one more delta event."""
    sidecar = await pii_sidecar()
    headers = {"x-fake-content": f"write to {EMAIL} [EMAIL"} if held_back else {}
    async with (
        client(sidecar, **headers) as c,
        c.responses.stream(model="gpt-4o", input=R_PROMPT) as stream,
    ):
        events = [ev async for ev in stream]
        final = await stream.get_final_response()
    expected = f"write to {EMAIL} [EMAIL" if held_back else f"echo: {R_PROMPT}"
    text = "".join(ev.delta for ev in events if ev.type == "response.output_text.delta")
    assert text == expected
    (done,) = [ev for ev in events if ev.type == "response.output_text.done"]
    assert done.text == expected
    assert final.output_text == expected
    seqs = [ev.sequence_number for ev in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    seen = upstream_saw(fake)
    assert EMAIL not in seen and "Hopper" not in seen


async def test_tool_results_in_the_input_are_redacted(
    pii_sidecar: Factory, fake: FakeUpstream
) -> None:
    """A function call and its output in the input history carry personal data
    too: both leave redacted, and the answer that echoes the output is restored."""
    sidecar = await pii_sidecar()
    history: Any = [
        {"role": "user", "content": R_PROMPT},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "ship",
            "arguments": json.dumps({"to": EMAIL}),
        },
        {"type": "function_call_output", "call_id": "call_1", "output": f"label for {NAME}"},
    ]
    async with client(sidecar) as c:
        response = await c.responses.create(model="gpt-4o", input=history, tools=TOOLS)
    assert response.output_text == f"echo: label for {NAME}"
    assert_clean_responses(fake)
