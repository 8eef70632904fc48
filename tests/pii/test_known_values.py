"""A value the detector flags in one part of a request is personal in every
part: occurrences without a cue (a tool result, a later message) are
replaced the same way and counted."""

from __future__ import annotations

import json
from typing import Any

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.pii import PiiEngine
from switchman_sidecar.pii.vault import PLACEHOLDER_RE

A = routes_pb2.PiiAction
CUED = "My name is Grace Hopper."
BARE = "label printed for Grace Hopper"


def engine(actions: dict[str, int] | None = None) -> PiiEngine:
    return PiiEngine(routes_pb2.PiiPolicy(enabled=True, actions=actions or {}), secret=b"k" * 32)


def chat(*texts: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": t} for t in texts]}


def test_the_bare_text_alone_is_not_flagged() -> None:
    """The premise: without the cue the detector misses this name, so the
    tests below show the second pass, not the detector."""
    r = engine().redact(chat(BARE), "chat")
    assert r.body["messages"][0]["content"] == BARE and not r.counts


def test_a_name_found_once_is_redacted_everywhere_with_one_placeholder() -> None:
    r = engine().redact(chat(CUED, BARE), "chat")
    first, second = (m["content"] for m in r.body["messages"])
    assert "Hopper" not in first + second
    assert PLACEHOLDER_RE.findall(first) == PLACEHOLDER_RE.findall(second)
    assert r.counts == {"PERSON": 2}
    assert r.restorer.restore(second) == BARE


def test_tool_call_arguments_and_results_of_the_responses_api() -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "user", "content": CUED},
            {
                "type": "function_call",
                "call_id": "c",
                "name": "f",
                "arguments": '{"to": "Grace Hopper"}',
            },
            {"type": "function_call_output", "call_id": "c", "output": BARE},
        ],
    }
    r = engine().redact(body, "responses")
    assert "Hopper" not in json.dumps(r.body)
    assert r.counts == {"PERSON": 3}


def test_whole_words_only_and_the_source_untouched() -> None:
    body = chat(CUED, "Grace Hoppers and Grace Hopperton are other words")
    r = engine().redact(body, "chat")
    assert r.body["messages"][1]["content"] == body["messages"][1]["content"]
    assert body["messages"][0]["content"] == CUED  # the caller's body is never mutated


def test_values_left_in_place_are_not_propagated() -> None:
    """ALLOW and ROUTE_COMPLIANT keep the value: nothing to spread. MASK spreads
    the same mask."""
    r = engine({"PERSON": A.PII_ACTION_ALLOW}).redact(chat(CUED, BARE), "chat")
    assert r.body["messages"][1]["content"] == BARE
    r = engine({"PERSON": A.PII_ACTION_MASK}).redact(chat(CUED, BARE), "chat")
    first, second = (m["content"] for m in r.body["messages"])
    assert "Hopper" not in second and second.startswith("label printed for ")
    assert first.endswith(second.removeprefix("label printed for ") + ".")
