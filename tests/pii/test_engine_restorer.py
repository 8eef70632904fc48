"""Placeholders, actions per policy, the request walker, and restoration
(whole, streamed at every split point, and inside JSON tool arguments)."""

from __future__ import annotations

import copy
import itertools
import json
import random
from typing import Any

import pytest

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.pii import PiiEngine
from switchman_sidecar.pii.restorer import VaultRestorer
from switchman_sidecar.pii.vault import MAX_PLACEHOLDER, PLACEHOLDER_RE, Vault, mask_value

A = routes_pb2.PiiAction
EMAIL = "ada.lovelace@example.org"
CARD = "4111 1111 1111 1111"


def engine(actions: dict[str, int] | None = None, **policy: Any) -> PiiEngine:
    return PiiEngine(
        routes_pb2.PiiPolicy(enabled=True, actions=actions or {}, **policy),
        secret=b"k" * 32,
    )


def chat(*texts: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": t} for t in texts]}


def test_same_value_same_placeholder_across_messages_and_requests() -> None:
    e = engine()
    r1 = e.redact(chat(f"mail {EMAIL}", f"again {EMAIL}, and bob@example.com"), "chat")
    texts = [m["content"] for m in r1.body["messages"]]
    tokens = [PLACEHOLDER_RE.findall(t) for t in texts]
    assert tokens[0][0] == tokens[1][0] and tokens[1][0] != tokens[1][1]
    assert all(EMAIL not in t for t in texts)
    assert r1.counts == {"EMAIL_ADDRESS": 3}
    r2 = e.redact(chat(f"later: {EMAIL}"), "chat")
    assert PLACEHOLDER_RE.findall(r2.body["messages"][0]["content"]) == [tokens[0][0]]
    other = PiiEngine(routes_pb2.PiiPolicy(enabled=True), secret=b"x" * 32)
    r3 = other.redact(chat(f"later: {EMAIL}"), "chat")
    assert PLACEHOLDER_RE.findall(r3.body["messages"][0]["content"]) != [tokens[0][0]]


def test_placeholder_collision_gets_a_longer_digest() -> None:
    v = Vault(b"s")
    a = v.placeholder("EMAIL_ADDRESS", "a@x.io")
    # force a clash: pretend another value already owns this short token
    v.values[a] = "someone-else@x.io"
    v._by_value.clear()
    b = v.placeholder("EMAIL_ADDRESS", "a@x.io")
    assert a != b and len(b) > len(a) and PLACEHOLDER_RE.fullmatch(b)


def test_body_is_not_mutated_and_restores() -> None:
    body = chat(f"I am Ada, write to {EMAIL}")
    before = copy.deepcopy(body)
    r = engine().redact(body, "chat")
    assert body == before
    sent = r.body["messages"][0]["content"]
    assert EMAIL not in sent
    assert r.restorer.restore(f"Sure, {sent}") == f"Sure, I am Ada, write to {EMAIL}"


def test_actions_mask_hash_allow_block_route() -> None:
    text = f"card {CARD} mail {EMAIL}"
    r = engine({"CREDIT_CARD": A.PII_ACTION_MASK, "EMAIL_ADDRESS": A.PII_ACTION_HASH}).redact(
        chat(text), "chat"
    )
    sent = r.body["messages"][0]["content"]
    assert "**** **** **** 1111" in sent and EMAIL not in sent and "<EMAIL_ADDRESS#" in sent
    r = engine({"EMAIL_ADDRESS": A.PII_ACTION_ALLOW}).redact(chat(text), "chat")
    assert (
        EMAIL in r.body["messages"][0]["content"] and CARD not in r.body["messages"][0]["content"]
    )
    r = engine({"CREDIT_CARD": A.PII_ACTION_BLOCK}).redact(chat(text), "chat")
    assert r.blocked == "CREDIT_CARD" and r.counts["CREDIT_CARD"] == 1
    r = engine(
        {"CREDIT_CARD": A.PII_ACTION_ROUTE_COMPLIANT}, compliant_tags=["self-hosted"]
    ).redact(chat(text), "chat")
    assert r.compliant_only and CARD in r.body["messages"][0]["content"]
    assert EMAIL not in r.body["messages"][0]["content"]
    assert mask_value("EMAIL_ADDRESS", "ada@example.org") == "a**@example.org"


@pytest.mark.parametrize(
    "policy",
    [
        routes_pb2.PiiPolicy(enabled=True, default_action=A.PII_ACTION_ROUTE_COMPLIANT),
        routes_pb2.PiiPolicy(enabled=True, custom=[routes_pb2.CustomEntity(name="X", regex="(")]),
        routes_pb2.PiiPolicy(
            enabled=True,
            custom=[
                routes_pb2.CustomEntity(name="X", regex="a"),
                routes_pb2.CustomEntity(name="X", regex="b"),
            ],
        ),
    ],
)
def test_bad_policies_are_rejected(policy: routes_pb2.PiiPolicy) -> None:
    with pytest.raises(ValueError):
        PiiEngine(policy)


def test_custom_entity_from_policy() -> None:
    e = PiiEngine(
        routes_pb2.PiiPolicy(
            enabled=True,
            custom=[
                routes_pb2.CustomEntity(name="case-id", regex=r"\bCASE-\d{5}\b", context=["case"])
            ],
        ),
        secret=b"k",
    )
    r = e.redact(chat("our case is CASE-12345"), "chat")
    assert r.counts == {"case-id": 1}
    assert "[CASE_ID_" in r.body["messages"][0]["content"]


def test_walker_covers_every_text_part() -> None:
    e = engine()
    chat_body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": f"Support for {EMAIL}"},
            {"role": "user", "content": [{"type": "text", "text": f"I'm {EMAIL}"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"email": EMAIL})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": f"found {EMAIL}, card {CARD}"},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": EMAIL}}],
    }
    r = e.redact(chat_body, "chat")
    sent = json.dumps(r.body["messages"])
    assert EMAIL not in sent and CARD not in sent
    assert r.body["tools"] == chat_body["tools"]  # schemas are not user data
    args = json.loads(r.body["messages"][2]["tool_calls"][0]["function"]["arguments"])
    assert PLACEHOLDER_RE.fullmatch(args["email"])

    anthropic = {
        "model": "m",
        "system": [{"type": "text", "text": f"user is {EMAIL}"}],
        "messages": [
            {"role": "user", "content": f"hi {EMAIL}"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"to": EMAIL}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": CARD}],
                    }
                ],
            },
        ],
    }
    r = e.redact(anthropic, "messages")
    assert EMAIL not in json.dumps(r.body) and CARD not in json.dumps(r.body)

    responses = {
        "model": "m",
        "instructions": f"user {EMAIL}",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": f"I am {EMAIL}"}]},
            {
                "type": "function_call",
                "call_id": "x",
                "name": "f",
                "arguments": json.dumps({"a": EMAIL}),
            },
            {"type": "function_call_output", "call_id": "x", "output": f"ok {CARD}"},
        ],
    }
    r = e.redact(responses, "responses")
    assert EMAIL not in json.dumps(r.body) and CARD not in json.dumps(r.body)
    r = e.redact({"model": "m", "input": [f"embed {EMAIL}"]}, "embeddings")
    assert EMAIL not in json.dumps(r.body)


def test_json_restoration_escapes_values() -> None:
    value = 'O"Brien \\ Street\n2'
    v = Vault(b"k")
    token = v.placeholder("STREET_ADDRESS", value)
    restorer = VaultRestorer(v.values)
    args = json.dumps({"to": token})
    assert json.loads(restorer.restore_json(args)) == {"to": value}
    assert restorer.restore(f"at {token}") == f"at {value}"
    stream = restorer.stream_json()
    out = "".join(stream.feed(c) for c in (args[:9], args[9:15], args[15:])) + stream.flush()
    assert json.loads(out) == {"to": value}


def test_unknown_placeholders_pass_through() -> None:
    restorer = VaultRestorer(Vault(b"k").values)
    text = "see [PERSON_abcdef] and [link](x)"
    assert restorer.restore(text) == text


def _split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def test_stream_restorer_every_split_point_and_random_splits() -> None:
    v = Vault(b"k")
    p1 = v.placeholder("EMAIL_ADDRESS", EMAIL)
    p2 = v.placeholder("PERSON", "Ada Lovelace")
    restorer = VaultRestorer(v.values)
    answer = f"Dear {p2}, [note] we wrote to {p1}.[{p1}] Bye [PERSON_"
    expected = restorer.restore(answer)
    assert EMAIL in expected and "Ada Lovelace" in expected and "[note]" in expected
    # every single split point, and every pair of split points
    for i in range(len(answer) + 1):
        for j in range(i, len(answer) + 1, 3):
            s = restorer.stream()
            out = "".join(s.feed(c) for c in _split_at(answer, [i, j])) + s.flush()
            assert out == expected, (i, j)
    rng = random.Random(7)
    for _ in range(300):
        cuts = rng.sample(range(len(answer) + 1), rng.randint(1, 12))
        s = restorer.stream()
        out = "".join(s.feed(c) for c in _split_at(answer, cuts)) + s.flush()
        assert out == expected
    # one character at a time
    s = restorer.stream()
    assert "".join(s.feed(c) for c in answer) + s.flush() == expected


def test_stream_hold_back_is_bounded_and_only_for_possible_placeholders() -> None:
    restorer = VaultRestorer(Vault(b"k").values)
    s = restorer.stream()
    assert s.feed("plain text, no brackets ") == "plain text, no brackets "
    assert s.feed("a [link") == "a [link"  # lower case cannot start a placeholder
    assert s.feed(" and [EMAIL_ADD") == " and "  # could still become one: held
    assert s.feed("RESS_12") == ""
    assert s.feed("x") == "[EMAIL_ADDRESS_12x"  # cannot any more: released
    s = restorer.stream()
    out = s.feed("[" + "A" * (MAX_PLACEHOLDER + 5))
    assert out.startswith("[AAAA")  # never more than one placeholder's length held
