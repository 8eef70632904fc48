"""PII plumbing (against the PiiEngine contract), recorded-traffic replay,
the admin port, and the standalone YAML source with reload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from switchman_fake import FakeUpstream
from switchman_fake.server import default_cassette_dir
from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.main import Sidecar
from switchman_sidecar.pii import PiiEngine, Redaction, Restorer, StreamRestorer
from switchman_sidecar.resilience import CircuitBreaker, RetryPolicy
from switchman_sidecar.settings import SidecarSettings

EMAIL = "alice@example.com"


class HoldBack(StreamRestorer):
    """Holds back a possible placeholder prefix, like a real engine must."""

    def __init__(self) -> None:
        self.buf = ""

    def feed(self, chunk: str) -> str:
        self.buf += chunk
        cut = self.buf.rfind("<")
        if cut >= 0 and ">" not in self.buf[cut:]:
            out, self.buf = self.buf[:cut], self.buf[cut:]
        else:
            out, self.buf = self.buf, ""
        return out.replace("<EMAIL 1>", EMAIL)

    def flush(self) -> str:
        out, self.buf = self.buf.replace("<EMAIL 1>", EMAIL), ""
        return out


class EmailRestorer(Restorer):
    def restore(self, text: str) -> str:
        return text.replace("<EMAIL 1>", EMAIL)

    def stream(self) -> StreamRestorer:
        return HoldBack()


class EmailEngine(PiiEngine):
    """Redacts one e-mail address to a placeholder with a space in it, so the
    fake splits it across two stream chunks."""

    def __init__(self) -> None:
        super().__init__(routes_pb2.PiiPolicy(enabled=True))

    def redact(self, body: dict[str, Any], api: str) -> Redaction:
        text = json.dumps(body)
        count = text.count(EMAIL)
        return Redaction(
            body=json.loads(text.replace(EMAIL, "<EMAIL 1>")),
            counts={"EMAIL_ADDRESS": count} if count else {},
            restorer=EmailRestorer(),
        )


@pytest.fixture
def pii_sidecar(sidecar: Sidecar) -> Sidecar:
    assert sidecar.store.current is not None
    sidecar.store.current.pii = EmailEngine()
    return sidecar


@pytest.mark.parametrize("stream", [False, True])
async def test_pii_never_leaves_the_pod_and_is_restored(
    pii_sidecar: Sidecar, fake: FakeUpstream, sdk: Any, records: Any, stream: bool
) -> None:
    c = sdk(pii_sidecar)
    messages = [{"role": "user", "content": f"mail {EMAIL} now"}]
    if stream:
        s = await c.chat.completions.create(model="claude", messages=messages, stream=True)
        text = "".join([ch.choices[0].delta.content or "" async for ch in s if ch.choices])
    else:
        raw = await c.chat.completions.with_raw_response.create(model="claude", messages=messages)
        assert raw.headers["x-switchman-pii-count"] == "1"
        text = raw.parse().choices[0].message.content or ""
    assert text == f"echo: mail {EMAIL} now"
    assert all(EMAIL not in r.raw.decode() for r in fake.received)
    assert "<EMAIL 1>" in fake.received[-1].raw.decode()
    assert dict(records(pii_sidecar)[0].pii_counts) == {"EMAIL_ADDRESS": 1}


async def test_pii_restored_in_streamed_tool_arguments(pii_sidecar: Sidecar, sdk: Any) -> None:
    c = sdk(pii_sidecar, **{"x-fake-tool-call": "send"})
    tools = [{"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}]
    s = await c.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": f"to {EMAIL}"}],
        tools=tools,
        stream=True,
    )
    args = ""
    async for ch in s:
        for d in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            args += (d.function.arguments or "") if d.function else ""
    assert json.loads(args) == {"text": f"to {EMAIL}"}


def _cassettes() -> list[tuple[str, int, bool]]:
    """(name, index, streamed) of successful chat interactions in a few cassettes."""
    out = []
    folder = default_cassette_dir()
    for path in sorted(folder.glob("*.yaml"))[:40]:
        data = yaml.safe_load(path.read_text())
        for i, it in enumerate(data.get("interactions") or []):
            resp = it["response"]
            if resp.get("status", {}).get("code") != 200:
                continue
            streamed = "parsed_body" not in resp
            if not str(it["request"].get("uri", "")).endswith("/chat/completions"):
                continue
            out.append((path.stem, i, streamed))
    streamed = [c for c in out if c[2]][:6]
    plain = [c for c in out if not c[2]][:6]
    return streamed + plain


async def test_cassettes_replay_through_the_sidecar(
    sidecar: Sidecar, sdk: Any, records: Any
) -> None:
    # The recorded traffic sits beside the repository (../shared/data), in CI too.
    assert default_cassette_dir().is_dir(), f"reference data missing at {default_cassette_dir()}"
    cases = _cassettes()
    assert len(cases) >= 8
    for n, (name, index, streamed) in enumerate(cases, start=1):
        c = sdk(sidecar, **{"x-fake-cassette": f"{name}#{index}"})
        if streamed:
            s = await c.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True
            )
            chunks = [ch async for ch in s]
            assert chunks and all(ch.usage is None for ch in chunks)
        else:
            answer = await c.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )
            assert answer.choices
        rec = records(sidecar)[-1]
        assert len(records(sidecar)) == n
        assert rec.input_tokens > 0 and rec.output_tokens > 0 and not rec.estimated, (name, index)


async def test_admin_port(sidecar: Sidecar, sdk: Any) -> None:
    await sdk(sidecar).chat.completions.create(
        model="best", messages=[{"role": "user", "content": "x"}]
    )
    async with httpx.AsyncClient(base_url=sidecar.admin_url, timeout=5) as admin:
        assert (await admin.get("/healthz")).status_code == 200
        ready = await admin.get("/readyz")
        assert ready.status_code == 200 and ready.json()["table_version"] == "test-1"
        metrics = (await admin.get("/metrics")).text
        line = (
            'switchman_requests_total{api="chat",model="gpt-4o",outcome="success",'
            'provider="openai"} 1.0'
        )
        assert line in metrics
        dump = await admin.get("/config_dump")
        assert "sk-secret" not in dump.text
        # the test venv builds native/: a sidecar without it would say so here
        assert dump.json()["settings"]["compiled_hot_paths"] is True
        models = dump.json()["route_table"]["models"]
        assert models[0]["credential"] == {
            "api_key": "[redacted]",
            "secret_ref": "team-a/keys/gpt-4o",
        }
        explain = (await admin.get("/explain", params={"model": "best"})).json()
        assert explain["candidates"] == ["gpt-4o"] and explain["reason"] == "alias"


async def test_not_ready_without_a_table() -> None:
    sidecar = await Sidecar(
        SidecarSettings(port=0, admin_port=0, access_log=False, log_usage=False)
    ).start()
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(sidecar.admin_url + "/readyz")).status_code == 503
            resp = await http.post(
                sidecar.url + "/v1/chat/completions",
                json={"model": "x", "messages": [{"role": "user", "content": "x"}]},
            )
            assert resp.status_code == 503 and resp.json()["error"]["code"] == "not_ready"
    finally:
        await sidecar.close()


async def test_standalone_yaml_reload_and_rejection(
    tmp_path: Path, fake: FakeUpstream, table_for: Callable[..., dict[str, Any]]
) -> None:
    path = tmp_path / "routes.yaml"
    table = table_for(fake.url)
    path.write_text(yaml.safe_dump(table))
    settings = SidecarSettings(
        port=0, admin_port=0, config=path, reload_interval_s=0.02, access_log=False, log_usage=False
    )
    sidecar = await Sidecar(settings).start()
    try:
        applied = sidecar.store.applied
        table["aliases"] = {"best": "claude"}
        path.write_text(yaml.safe_dump(table))
        async with openai.AsyncOpenAI(
            base_url=sidecar.url + "/v1", api_key="x", max_retries=0
        ) as c:
            await _wait_until(lambda: sidecar.store.applied > applied)
            raw = await c.chat.completions.with_raw_response.create(
                model="best", messages=[{"role": "user", "content": "x"}]
            )
            assert raw.headers["x-switchman-model"] == "claude"
            # a broken table is rejected; the previous one stays in force
            path.write_text(yaml.safe_dump({**table, "aliases": {"best": "nope"}}))
            await _wait_until(lambda: sidecar.store.rejected > 0)
            assert "nope" in sidecar.store.last_error
            raw = await c.chat.completions.with_raw_response.create(
                model="best", messages=[{"role": "user", "content": "x"}]
            )
            assert raw.headers["x-switchman-model"] == "claude"
    finally:
        await sidecar.close()


async def _wait_until(predicate: Callable[[], bool]) -> None:
    """Polls the config watcher's counters (bounded: 5 s)."""
    for _ in range(250):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met within 5 s")


def test_circuit_breaker_half_open_probing() -> None:
    policy = RetryPolicy(breaker_failures=2, breaker_ejection_s=10, breaker_half_open=1)
    b = CircuitBreaker()
    b.record(False, policy, now=0)
    assert b.allow(policy, now=0)
    b.record(False, policy, now=0)
    assert b.state == "open" and not b.allow(policy, now=5)
    assert b.allow(policy, now=11) and b.state == "half-open"
    assert not b.allow(policy, now=11)  # one probe at a time
    b.record(False, policy, now=11)  # the probe failed: open again
    assert not b.allow(policy, now=12) and b.allow(policy, now=22)
    b.record(True, policy, now=22)
    assert b.state == "closed" and b.allow(policy, now=22)
