"""The sidecar's own Python time per request, with no sockets and no kernel.

A chat request is fed to the sidecar's HTTP connection object through a fake
transport; the upstream connection in its pool has a fake transport too, which
answers every request with a recorded OpenAI answer (or stream) on the next
turn of the event loop. What is timed (``time.process_time``) is then only
the Python the sidecar runs per request: parse, route, send, read, answer,
usage record, log line. On a machine shared with other jobs this is far
steadier than the socket benchmark (bench_sidecar_overhead.py), and with
``--baseline`` two checkouts run side by side, alternating batches on one CPU,
so both see the same interference; the ratio of their paired batches is the
figure to quote.

    .venv/bin/python tests/bench/bench_sidecar_python.py                 # this checkout
    .venv/bin/python tests/bench/bench_sidecar_python.py --baseline DIR  # A/B (DIR: a sidecar/)
    .venv/bin/python tests/bench/bench_sidecar_python.py --stream        # streamed requests
    .venv/bin/python tests/bench/bench_sidecar_python.py --realistic     # rules, PII, strategy
    .venv/bin/python tests/bench/bench_sidecar_python.py --split         # head, body apart

Prints one JSON line. ``critical_us`` splits the non-streamed request: until
the upstream write, from the upstream answer to the client write (both on the
request's latency path), and after the client write (usage, metrics, log).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
BODY = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hello benchmark"}]}'
STREAM_BODY = (
    b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hello benchmark"}]}'
)
ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1796150045,"model":"gpt-4o",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"echo: hello benchmark",'
    b'"refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,'
    b'"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_fake"}'
)


def _sse(choices: bytes, usage: bytes = b"null") -> bytes:
    event = (
        b'data: {"id":"chatcmpl-2","object":"chat.completion.chunk","created":1796150045,'
        b'"model":"gpt-4o","choices":[%s],"usage":%s}\n\n' % (choices, usage)
    )
    return b"%x\r\n%s\r\n" % (len(event), event)


STREAM_PARTS = [
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    + _sse(b'{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}'),
    *(
        _sse(b'{"index":0,"delta":{"content":"%s"},"finish_reason":null}' % word)
        for word in (b"echo:", b" hello", b" benchmark")
    ),
    _sse(b'{"index":0,"delta":{},"finish_reason":"stop"}'),
    _sse(b"", b'{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}'),
    b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n",
]
_MODEL = """- name: {name}
  provider: PROVIDER_OPENAI
  upstream_model: gpt-4o
  endpoint: http://127.0.0.1:9/v1
  credential: {{api_key: sk-bench}}
  price: {{input_per_mtok: {input}, output_per_mtok: {output}}}
"""
ROUTES = "team: bench\nmodels:\n" + _MODEL.format(name="gpt-4o", input=2.5, output=10)


#: ``--realistic``: a table as a platform team runs it (two models, an alias the
#: strategy resolves, CEL rules, PII redaction on), a ~700-character prompt with a
#: name and an e-mail address, and the headers the OpenAI SDK sends.
REALISTIC_ROUTES = (
    ROUTES
    + "  quality: {overall: 0.9}\n"
    + _MODEL.format(name="gpt-4o-mini", input=0.15, output=0.6)
    + "  quality: {overall: 0.75}\n"
    + """aliases: {smart: auto}
default_strategy: STRATEGY_BALANCED
quality_bar: 0.7
rules:
- {name: premium, when: 'request.headers["x-tier"] == "premium"', route_to: gpt-4o}
- {name: budget, when: 'budget.percentUsed > 90.0', strategy: STRATEGY_COST}
- {name: code, when: 'task == "code"', strategy: STRATEGY_QUALITY}
pii:
  enabled: true
  default_action: PII_ACTION_REDACT
"""
)
_PROMPT = (
    "Hi, I am Maria Gonzalez and my email is maria.gonzalez@example.com. "
    + "Please summarise the attached meeting notes about the quarterly roadmap "
    "and the hiring plan for the data team. " * 5
)
REALISTIC_BODY = (
    b'{"model":"smart","messages":[{"role":"system","content":"You are a helpful '
    b'assistant."},{"role":"user","content":"%s"}]}' % _PROMPT.encode()
)
SDK_HEADERS = (
    b"accept: application/json\r\nuser-agent: OpenAI/Python 1.60.0\r\n"
    b"x-stainless-lang: python\r\nx-stainless-package-version: 1.60.0\r\n"
    b"x-stainless-os: Linux\r\nx-stainless-arch: x64\r\nx-stainless-runtime: CPython\r\n"
    b"x-stainless-runtime-version: 3.11.7\r\nx-stainless-retry-count: 0\r\n"
)


class _Upstream:
    """The pooled upstream connection's transport: answers on the next loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: bool, marks: dict[str, int]):
        self.loop, self.stream, self.marks = loop, stream, marks
        self.conn: Any = None

    def write(self, data: bytes) -> None:
        self.marks["upstream_write"] = time.perf_counter_ns()
        if self.stream:
            self.loop.call_soon(self._part, 0)
        else:
            self.loop.call_soon(self._answer)

    def _part(self, i: int) -> None:
        """One stream event per loop turn, as a provider's tokens arrive (each read is
        relayed to the client before the next one comes in)."""
        self.conn.data_received(STREAM_PARTS[i])
        if i + 1 < len(STREAM_PARTS):
            self.loop.call_soon(self._part, i + 1)

    def _answer(self) -> None:
        self.marks["upstream_answer"] = time.perf_counter_ns()
        self.conn.data_received(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(ANSWER), ANSWER)
        )

    def abort(self) -> None: ...
    def close(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class _Client:
    """The application's connection: resolves ``done`` when the answer is complete."""

    def __init__(self, stream: bool, marks: dict[str, int]) -> None:
        self.stream, self.marks = stream, marks
        self.done: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        self.marks["client_write"] = time.perf_counter_ns()
        end = data.endswith(b"0\r\n\r\n") if self.stream else b"content-length" in data
        if end and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def set_write_buffer_limits(self, high: int | None = None) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


async def _serve(stream: bool, realistic: bool = False, split: bool = False) -> None:
    """Child: reads batch sizes on stdin, answers with Python µs per request."""
    from switchman_sidecar.app import App
    from switchman_sidecar.http import client as upstream_client
    from switchman_sidecar.http import server as http_server
    from switchman_sidecar.main import Sidecar
    from switchman_sidecar.settings import SidecarSettings

    tmp = Path(tempfile.mkdtemp(prefix="switchman-pybench-"))
    (tmp / "routes.yaml").write_text(REALISTIC_ROUTES if realistic else ROUTES)
    sys.stderr = (tmp / "log").open("w")  # the sidecar's log lines (access log on)
    sidecar = Sidecar(SidecarSettings.from_env(config=tmp / "routes.yaml"))
    assert sidecar.load_config()
    loop = asyncio.get_running_loop()
    marks: dict[str, int] = {}
    table = sidecar.store.current
    assert table is not None
    pool = sidecar.client._pool(table.facts["gpt-4o"].origin)
    upstream = _Upstream(loop, stream, marks)
    conn = upstream_client._Conn(pool)
    upstream.conn = conn
    conn.connection_made(upstream)  # type: ignore[arg-type]
    pool.put(conn)
    client = _Client(stream, marks)
    server = http_server._HttpConnection(
        App(sidecar.pipeline, sidecar.feedback), http_server.ServerLimits(), set()
    )
    server.connection_made(client)  # type: ignore[arg-type]
    body = STREAM_BODY if stream else BODY
    extra = b""
    if realistic:
        body = (
            REALISTIC_BODY.replace(b'{"model"', b'{"stream":true,"model"')
            if stream
            else (REALISTIC_BODY)
        )
        extra = SDK_HEADERS
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:4000\r\n"
        b"content-type: application/json\r\nauthorization: Bearer sk-x\r\n%s"
        b"content-length: %d\r\n\r\n%s" % (extra, len(body), body)
    )

    cut = request.index(b"\r\n\r\n") + 4

    async def one() -> None:
        client.done = loop.create_future()
        marks["start"] = time.perf_counter_ns()
        if split:  # as the OpenAI SDK (httpx) writes it: httptools parses
            server.data_received(request[:cut])
            server.data_received(request[cut:])
        else:
            server.data_received(request)
        await client.done
        marks["end"] = time.perf_counter_ns()

    for _ in range(300):
        await one()
    compiled = _compiled_active()
    gc.collect()
    gc.freeze()
    out = sys.__stdout__
    assert out is not None
    for line in sys.stdin:
        n = int(line)
        if n == 0:
            break
        splits = []
        t0 = time.process_time()
        for _ in range(n):
            await one()
            if not stream:
                splits.append(
                    (
                        marks["upstream_write"] - marks["start"],
                        marks["client_write"] - marks["upstream_answer"],
                        marks["end"] - marks["client_write"],
                    )
                )
        per = (time.process_time() - t0) / n * 1e6
        columns = zip(*splits, strict=True)
        # Not named ``split``: that is the flag one() reads on every request.
        parts = [round(statistics.median(c) / 1000, 1) for c in columns] if splits else []
        out.write(json.dumps({"us": per, "split": parts, "compiled": compiled}) + "\n")
        out.flush()
    sidecar.log_lines.flush()


def _compiled_active() -> bool:
    """Whether the request path runs compiled: its pipeline is an extension module."""
    from switchman_sidecar import pipeline

    return (pipeline.__file__ or "").endswith(".so")


def _spawn(
    source: Path,
    stream: bool,
    cpu: int | None,
    realistic: bool = False,
    split: bool = False,
    plain: bool = False,
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if plain:
        env["SWITCHMAN_COMPILED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join([str(source), str(source.parent / "protos")])
    cmd = [sys.executable, str(HERE), "--child", str(source)] + (["--stream"] if stream else [])
    cmd += ["--realistic"] if realistic else []
    cmd += ["--split"] if split else []
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    return subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO
    )


def _batch(proc: subprocess.Popen[str], n: int) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{n}\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("the harness process died")
    result: dict[str, Any] = json.loads(line)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout's sidecar/ dir (A/B), or `plain`: this checkout without its"
        " compiled modules (SWITCHMAN_COMPILED=0)",
    )
    parser.add_argument("--stream", action="store_true", help="streamed chat requests")
    parser.add_argument(
        "--realistic",
        action="store_true",
        help="a production-like table: CEL rules, PII redaction, a strategy, SDK headers",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="the request's head and body in two reads, as the OpenAI SDK writes them",
    )
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=300, help="requests per batch")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        import uvloop

        uvloop.run(_serve(args.stream, args.realistic, args.split))
        return
    cpu = max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    sources = {"sidecar": REPO / "sidecar"}
    plain = str(args.baseline) == "plain"
    if args.baseline is not None:
        sources = {"baseline": REPO / "sidecar" if plain else args.baseline.resolve(), **sources}
    procs = {
        name: _spawn(
            src, args.stream, cpu, args.realistic, args.split, plain and name == "baseline"
        )
        for name, src in sources.items()
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in procs}
    try:
        for _ in range(3):
            for proc in procs.values():
                _batch(proc, args.batch)
        names = list(procs)
        for i in range(args.batches):
            for name in names if i % 2 == 0 else names[::-1]:  # alternate who goes first
                runs[name].append(_batch(procs[name], args.batch))
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.write("0\n")
                proc.stdin.close()
            proc.wait(30)
    summary: dict[str, Any] = {
        "bench": "sidecar_python",
        "stream": args.stream,
        "realistic": args.realistic,
        "split": args.split,
        "batches": args.batches,
        "batch": args.batch,
    }
    for name, results in runs.items():
        per = [r["us"] for r in results]
        entry: dict[str, Any] = {
            "compiled": results[0].get("compiled", False),
            "us_per_req_min": round(min(per), 1),
            "us_per_req_median": round(statistics.median(per), 1),
        }
        if results[0]["split"]:
            parts = list(zip(*(r["split"] for r in results), strict=True))
            entry["critical_us"] = {
                "to_upstream_write": round(min(parts[0]), 1),
                "upstream_answer_to_client_write": round(min(parts[1]), 1),
                "after_client_write": round(min(parts[2]), 1),
            }
        summary[name] = entry
    if args.baseline is not None:
        ratios = [s["us"] / b["us"] for s, b in zip(runs["sidecar"], runs["baseline"], strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        summary["sidecar_vs_baseline"] = {
            "median_ratio": round(statistics.median(ratios), 3),
            "iqr": [round(q1, 3), round(q3, 3)],
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
