"""The pieces the performance pass changed: batched log lines, metrics kept
outside prometheus_client until scraped, lazy connection timers, cached
upstream request heads."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
import orjson

from switchman_protocol.v1 import routes_pb2, usage_pb2
from switchman_sidecar.app import AccessLog
from switchman_sidecar.logbuf import LineBuffer
from switchman_sidecar.metrics import MAX_SERIES, Metrics
from switchman_sidecar.pipeline import Exchange


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.written = asyncio.Event()

    def write(self, s: str) -> int:
        self.writes += 1
        self.written.set()
        return super().write(s)


async def test_log_lines_are_batched_and_flushed() -> None:
    stream = CountingStream()
    buf = LineBuffer(stream, delay_s=0.01)
    log = AccessLog(buf)
    for i in range(50):
        log(Exchange(api="chat", request_id=f"r{i}"))
    assert stream.writes == 0  # nothing written on the request path
    await asyncio.wait_for(stream.written.wait(), 2)
    lines = stream.getvalue().splitlines()
    assert stream.writes == 1 and len(lines) == 50
    assert [orjson.loads(line)["request_id"] for line in lines] == [f"r{i}" for i in range(50)]


async def test_log_buffer_writes_at_once_when_large_and_on_flush() -> None:
    stream = CountingStream()
    buf = LineBuffer(stream, delay_s=60, flush_bytes=100)
    buf.write(b"x" * 60 + b"\n")
    assert stream.writes == 0
    buf.write(b"y" * 60 + b"\n")  # over the size: written now, not in 60 s
    assert stream.writes == 1
    buf.write(b"z\n")
    buf.flush()
    assert stream.getvalue().splitlines() == ["x" * 60, "y" * 60, "z"]


def test_log_buffer_without_a_loop_writes_immediately() -> None:
    stream = CountingStream()
    LineBuffer(stream).write(b'{"a":1}\n')
    assert stream.getvalue() == '{"a":1}\n'


def test_metrics_render_the_request_families() -> None:
    m = Metrics()
    m.observe("chat", "gpt-4o", "openai", "success", 0.003, (10, 2, 5, 1), 0.25)
    m.observe("chat", "gpt-4o", "openai", "upstream_error", 0.3, (0, 0, 0, 0), 0.0)
    m.observe("embeddings", "gpt-4o", "openai", "success", 0.02, (7, 0, 0, 0), 0.5)
    text = m.render().decode()
    expected = [
        'switchman_requests_total{api="chat",model="gpt-4o",outcome="success",'
        'provider="openai"} 1.0',
        'switchman_requests_total{api="chat",model="gpt-4o",outcome="upstream_error",'
        'provider="openai"} 1.0',
        'switchman_request_duration_seconds_bucket{api="chat",le="0.005",model="gpt-4o"} 1.0',
        'switchman_request_duration_seconds_bucket{api="chat",le="0.25",model="gpt-4o"} 1.0',
        'switchman_request_duration_seconds_bucket{api="chat",le="0.5",model="gpt-4o"} 2.0',
        'switchman_request_duration_seconds_bucket{api="chat",le="+Inf",model="gpt-4o"} 2.0',
        'switchman_request_duration_seconds_count{api="chat",model="gpt-4o"} 2.0',
        'switchman_request_duration_seconds_count{api="embeddings",model="gpt-4o"} 1.0',
        'switchman_tokens_total{kind="input",model="gpt-4o"} 17.0',
        'switchman_tokens_total{kind="cached_input",model="gpt-4o"} 2.0',
        'switchman_tokens_total{kind="output",model="gpt-4o"} 5.0',
        'switchman_tokens_total{kind="reasoning",model="gpt-4o"} 1.0',
        'switchman_cost_usd_total{model="gpt-4o"} 0.75',
    ]
    for line in expected:
        assert line in text, line
    assert "# TYPE switchman_request_duration_seconds histogram" in text


def test_extra_attempts_count_their_tokens_and_cost_and_pii_counts_types() -> None:
    m = Metrics()
    m.observe("chat", "big", "openai", "success", 0.003, (10, 0, 5, 0), 0.25)
    m.attempt("small", "cascade", (10, 0, 3, 0), 0.01)
    m.attempt("big", "shadow", (10, 0, 4, 0), 0.5)
    m.pii({"EMAIL_ADDRESS": 2, "PERSON": 1})
    m.pii({"EMAIL_ADDRESS": 1})
    text = m.render().decode()
    expected = [
        'switchman_extra_attempts_total{kind="cascade",model="small"} 1.0',
        'switchman_extra_attempts_total{kind="shadow",model="big"} 1.0',
        'switchman_tokens_total{kind="input",model="big"} 20.0',
        'switchman_tokens_total{kind="output",model="small"} 3.0',
        'switchman_cost_usd_total{model="big"} 0.75',
        'switchman_cost_usd_total{model="small"} 0.01',
        'switchman_pii_entities_total{entity="EMAIL_ADDRESS"} 3.0',
        'switchman_pii_entities_total{entity="PERSON"} 1.0',
    ]
    for line in expected:
        assert line in text, line
    # Attempts are not requests.
    assert text.count("switchman_requests_total{") == 1


def test_metrics_cardinality_is_bounded() -> None:
    m = Metrics()
    for i in range(MAX_SERIES + 50):
        m.observe("chat", f"typo-{i}", "", "rejected", 0.001, (0, 0, 0, 0), 0.0)
    text = m.render().decode()
    assert 'model="_other"' in text
    # The first MAX_SERIES combinations, then everything else folded into one "_other".
    assert text.count("switchman_requests_total{") == MAX_SERIES + 1
    assert 'model="_other",outcome="rejected",provider=""} 50.0' in text


async def test_keep_alive_timer_survives_many_requests_then_closes(make_sidecar: Any) -> None:
    """The lazy timer must still close an idle connection, and not close a busy one."""
    sidecar = await make_sidecar(keepalive_timeout_s=0.3, header_timeout_s=0.15)
    host, port = sidecar.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"
    loop = asyncio.get_running_loop()
    start = loop.time()
    idle_from = start
    for i in range(8):  # spans more than one keep-alive and header period
        if i:
            await asyncio.sleep(0.1)
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        idle_from = loop.time()
    assert loop.time() - start > 0.6
    # Idle now: closed after the keep-alive timeout (not the shorter header one).
    assert await asyncio.wait_for(reader.read(), 3) == b""
    assert loop.time() - idle_from >= 0.25
    writer.close()
    # A slow request on a fresh connection still gets 408 after the header timeout.
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n{")
    data = await asyncio.wait_for(reader.read(), 3)
    assert data.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_upstream_heads_are_cached_per_model(make_sidecar: Any, fake: Any) -> None:
    sidecar = await make_sidecar(native_lane=False)  # the Python path's heads
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=5) as client:
        for name in ("gpt-4o", "local", "gpt-4o"):
            r = await client.post(
                "/v1/chat/completions",
                json={"model": name, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200, r.text
    heads = list(sidecar.client._heads.values())
    assert len(heads) == 2  # two models, one cached head each
    sent = [r for r in fake.received if r.path.endswith("/chat/completions")]
    assert [r.headers["authorization"] for r in sent] == [
        "Bearer sk-secret-gpt-4o",
        "Bearer sk-secret-local",
        "Bearer sk-secret-gpt-4o",
    ]


async def test_prompt_text_is_built_only_when_routing_reads_it(
    make_sidecar: Any, fake: Any, model_for: Any
) -> None:
    from switchman_sidecar.route_request import LazyPromptRequest

    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]}
    lazy = LazyPromptRequest(body, model="m")
    assert lazy._text is None  # nothing built yet
    assert lazy.prompt_text == "a" and lazy._text == "a"
    assert LazyPromptRequest(None, model="m").prompt_text == ""

    # A rule on the task kind still sees the prompt (built on demand).
    table = {
        "team": "team-a",
        "models": [
            model_for("general", "PROVIDER_OPENAI", f"{fake.url}/v1"),
            model_for("coder", "PROVIDER_OPENAI", f"{fake.url}/v1"),
        ],
        "rules": [{"name": "code", "when": 'task == "code"', "route_to": "coder"}],
    }
    sidecar = await make_sidecar(table)
    prompts = {
        "Write a Python function that reverses a linked list and fix this bug in def foo():": (
            "coder"
        ),
        "hello there": "general",
    }
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=5) as client:
        for prompt, expected in prompts.items():
            r = await client.post(
                "/v1/chat/completions",
                json={"model": "general", "messages": [{"role": "user", "content": prompt}]},
            )
            assert r.status_code == 200, r.text
            assert r.headers["x-switchman-model"] == expected, prompt


async def test_stream_that_stalls_after_its_first_chunk_ends_with_an_error_event(
    make_sidecar: Any, fake: Any, records: Any, model_for: Any
) -> None:
    """The per-gap idle timeout (now kept by the upstream connection, not a timer per chunk)."""
    table = {
        "team": "team-a",
        "models": [model_for("gpt-4o", "PROVIDER_OPENAI", f"{fake.url}/v1")],
        "resilience": {"max_retries": 0, "per_try_timeout_ms": 1000},
    }
    sidecar = await make_sidecar(table)
    body = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as client:
        # Chunks 30 s apart: the first arrives, then the gap exceeds 1 s; the stream
        # ends with the error event long before a second chunk could arrive.
        r = await client.post(
            "/v1/chat/completions", json=body, headers={"x-fake-drip-ms": "30000"}
        )
        assert r.status_code == 200
        events = [line for line in r.text.splitlines() if line.startswith("data: ")]
        assert '"content":""' in events[0] or "delta" in events[0]
        assert "stalled" in events[-1] and '"code":"timeout"' in events[-1]
        # Chunks 50 ms apart never trip it, however long the stream.
        r = await client.post("/v1/chat/completions", json=body, headers={"x-fake-drip-ms": "50"})
        assert r.text.rstrip().endswith("data: [DONE]")
    outcomes = [rec.outcome for rec in records(sidecar)]
    assert outcomes == [usage_pb2.OUTCOME_UPSTREAM_ERROR, usage_pb2.OUTCOME_SUCCESS]


async def test_pipelined_requests_are_answered_in_order(make_sidecar: Any) -> None:
    """One worker task per connection: the slow first request is answered first."""
    sidecar = await make_sidecar()
    host, port = sidecar.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))

    def request(word: str, extra: bytes = b"") -> bytes:
        body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"%s"}]}' % word.encode()
        return (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n%scontent-length: %d\r\n\r\n%s"
            % (extra, len(body), body)
        )

    writer.write(
        request("first", b"x-fake-latency-ms: 200\r\n") + request("second") + request("third")
    )
    seen = b""
    async with asyncio.timeout(5):
        while seen.count(b"HTTP/1.1 200") < 3 or not seen.rstrip().endswith(b"}"):
            seen += await reader.read(65536)
    assert seen.index(b"echo: first") < seen.index(b"echo: second") < seen.index(b"echo: third")
    # The connection is still good for more.
    writer.write(request("fourth"))
    more = b""
    async with asyncio.timeout(5):
        while b"echo: fourth" not in more:
            more += await reader.read(65536)
    writer.close()


async def test_streamed_responses_deltas_are_restored(sidecar: Any, fake: Any, sdk: Any) -> None:
    """/v1/responses streamed: a placeholder split across deltas comes back whole,
    held-back text goes out before response.completed, which is restored too."""
    from switchman_sidecar.pii import PiiEngine, Redaction, Restorer, StreamRestorer

    email = "alice@example.com"

    class HoldBack(StreamRestorer):
        def __init__(self) -> None:
            self.buf = ""

        def feed(self, chunk: str) -> str:
            self.buf += chunk
            cut = self.buf.rfind("<")
            if cut >= 0 and ">" not in self.buf[cut:]:
                out, self.buf = self.buf[:cut], self.buf[cut:]
            else:
                out, self.buf = self.buf, ""
            return out.replace("<EMAIL 1>", email)

        def flush(self) -> str:
            out, self.buf = self.buf.replace("<EMAIL 1>", email), ""
            return out

    class EmailRestorer(Restorer):
        def restore(self, text: str) -> str:
            return text.replace("<EMAIL 1>", email)

        def stream(self) -> StreamRestorer:
            return HoldBack()

    class EmailEngine(PiiEngine):
        def __init__(self) -> None:
            super().__init__(routes_pb2.PiiPolicy(enabled=True))

        def redact(self, body: dict[str, Any], api: str) -> Redaction:
            text = orjson.dumps(body).decode()
            count = text.count(email)
            return Redaction(
                body=orjson.loads(text.replace(email, "<EMAIL 1>")),
                counts={"EMAIL_ADDRESS": count} if count else {},
                restorer=EmailRestorer(),
            )

    sidecar.store.current.pii = EmailEngine()
    cases = {
        f"mail {email} now": f"echo: mail {email} now",
        # The answer ends inside a possible placeholder: the held-back "<x" still arrives.
        "": f"write to {email} <x",
    }
    for prompt, expected in cases.items():
        headers = {} if prompt else {"x-fake-content": "write to <EMAIL 1> <x"}
        client = sdk(sidecar, **headers)
        stream = await client.responses.create(
            model="gpt-4o", input=prompt or f"to {email}", stream=True
        )
        deltas, kinds, final = [], [], ""
        async for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.completed":
                final = event.response.output_text
        assert "".join(deltas) == expected, deltas
        assert final == expected
        assert kinds[-1] == "response.completed"  # nothing after the terminal event
    assert all(email not in r.raw.decode() for r in fake.received)
