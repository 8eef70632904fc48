"""The Responses API with the official SDK: personal data leaves the pod
redacted (checked at the fake upstream) and comes back restored in output
text and function-call arguments, whole and streamed; events the restorer
inserts keep the stream's sequence numbers consecutive."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest

from switchman_fake import FakeUpstream
from switchman_sidecar.main import Sidecar

EMAIL = "grace.hopper@navy.example"
NAME = "Grace Hopper"
PROMPT = f"My name is {NAME}, ship to {EMAIL}"
TOOLS: Any = [
    {
        "type": "function",
        "name": "ship",
        "parameters": {"type": "object", "properties": {}},
        "strict": False,
    }
]
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
            model="gpt-4o", input=[{"role": "user", "content": PROMPT}], tools=TOOLS
        )
    (call,) = calls_of(response)
    assert call.name == "ship"
    assert json.loads(call.arguments) == {"text": PROMPT}
    assert_clean(fake)


async def test_function_call_arguments_restored_in_a_stream(
    pii_sidecar: Factory, fake: FakeUpstream
) -> None:
    sidecar = await pii_sidecar()
    async with (
        client(sidecar, **{"x-fake-tool-call": "auto"}) as c,
        c.responses.stream(
            model="gpt-4o", input=[{"role": "user", "content": PROMPT}], tools=TOOLS
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
    assert json.loads(deltas) == {"text": PROMPT}
    assert json.loads(done.arguments) == {"text": PROMPT}
    (item_done,) = [ev for ev in events if ev.type == "response.output_item.done"]
    assert json.loads(getattr(item_done.item, "arguments", "")) == {"text": PROMPT}
    (call,) = calls_of(final)
    assert json.loads(call.arguments) == {"text": PROMPT}
    seqs = [ev.sequence_number for ev in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert_clean(fake)


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
        c.responses.stream(model="gpt-4o", input=PROMPT) as stream,
    ):
        events = [ev async for ev in stream]
        final = await stream.get_final_response()
    expected = f"write to {EMAIL} [EMAIL" if held_back else f"echo: {PROMPT}"
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
        {"role": "user", "content": PROMPT},
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
    assert_clean(fake)
