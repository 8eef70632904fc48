"""The benchmark's Go load generator and upstream (tests/bench/loadgen).

bench_sidecar_overhead.py's figures are only as good as these: the generator
must read whole and chunked answers without errors in every mode, and the
upstream must give every column the Python fake's answers (what it replays
was captured from the fake at the start of the run).
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_sidecar_overhead.py"

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="needs the go toolchain")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sidecar_overhead", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fake_port(bench: ModuleType) -> Iterator[int]:
    port = bench.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchman_fake", "--port", str(port), "--no-record"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        bench.wait_port(port, proc, 20)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _post(port: int, body: bytes) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        answer = conn.getresponse()
        assert answer.status == 200
        return answer.read()
    finally:
        conn.close()


def _events(raw: bytes) -> list[Any]:
    """An answer's JSON objects (one, or one per SSE event) without per-request ids/times."""
    texts = [raw] if raw.startswith(b"{") else raw.split(b"\n\n")
    out: list[Any] = []
    for text in texts:
        text = text.strip().removeprefix(b"data: ")
        if not text:
            continue
        if text == b"[DONE]":
            out.append("[DONE]")
            continue
        obj = json.loads(text)
        obj.pop("id", None)
        obj.pop("created", None)
        out.append(obj)
    return out


def test_every_mode_reads_whole_and_chunked_answers(
    bench: ModuleType, fake_port: int, tmp_path: Path
) -> None:
    exe = bench.build_loadgen()
    assert isinstance(exe, Path), exe
    load = bench.GoLoad(exe, tmp_path)
    path = "/v1/chat/completions"
    serial = load.run("serial", fake_port, path, None, n=20)
    assert serial["errors"] == 0 and len(serial["samples_ns"]) == 20
    assert all(s > 0 for s in serial["samples_ns"])
    ttft = load.run("ttft", fake_port, path, None, n=5)
    assert ttft["errors"] == 0 and len(ttft["samples_ns"]) == 5
    opened = load.run("open", fake_port, path, None, rate=200, seconds=0.5, conns=4)
    assert opened["errors"] == 0 and len(opened["samples_ns"]) == 100
    closed = load.run("closed", fake_port, path, None, seconds=0.3, conns=4)
    assert closed["errors"] == 0 and closed["done"] > 0 and closed["rps"] > 0
    # Failed answers (the fake steered to 503) are counted as errors, not as samples.
    failed = load.run("serial", fake_port, "/_steer/status=503" + path, None, n=3)
    assert failed["errors"] == 3 and not failed["samples_ns"]


def test_the_upstream_replays_the_fakes_answers(
    bench: ModuleType, fake_port: int, tmp_path: Path
) -> None:
    exe = bench.build_loadgen()
    assert isinstance(exe, Path), exe
    bench.capture_answers(fake_port, tmp_path / "answers.json")
    port = bench.free_port()
    upstream = bench.GoLoad(exe, tmp_path).serve(port, tmp_path / "answers.json")
    try:
        bench.wait_port(port, upstream, 20)
        for body in (bench.BODY, bench.STREAM_BODY, bench.stream_usage_body()):
            want, got = _events(_post(fake_port, body)), _events(_post(port, body))
            assert got == want and len(want) >= 1
        # The usage chunk only when asked for, as the fake does.
        assert _events(_post(port, bench.STREAM_BODY))[-2].get("usage") is None
        assert _events(_post(port, bench.stream_usage_body()))[-2]["usage"]["total_tokens"] > 0
    finally:
        upstream.terminate()
        upstream.wait(10)
