"""The compiled request parser (native/src/request.rs) against httptools, the reference.

The server parses a read holding one whole plain request with one compiled
call and hands anything else to httptools. Whatever the bytes, a connection
must dispatch the same requests (method, path, query, headers in order,
body, keep-alive) and write the same bytes (rejections) with the compiled
parser as without it: checked on generated requests, well-formed and not.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from switchman_sidecar.http import server as http_server
from switchman_sidecar.http.server import Request, ResponseWriter, ServerLimits
from switchman_sidecar.main import Sidecar

from .conftest import SidecarFactory


class _Transport:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def close(self) -> None:
        self.closed = True

    def set_write_buffer_limits(self, high: int | None = None) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


async def _serve(reads: list[bytes], compiled: bool) -> tuple[list[Any], bytes, bool, int]:
    """Feeds ``reads`` to one connection; what it dispatched and wrote, and how
    many requests the compiled parser took."""
    seen: list[Any] = []

    async def handler(req: Request, w: ResponseWriter) -> None:
        seen.append((req.method, req.path, req.query, list(req.headers.items()), req.body))
        w.send(200, [], b"ok")

    taken = 0
    conn = http_server._HttpConnection(handler, ServerLimits(max_body_bytes=4096), set())
    if compiled:
        assert conn._parse is not None
        parse = conn._parse

        def counting(data: bytes, limit: int) -> Any:
            nonlocal taken
            got = parse(data, limit)
            taken += got is not None
            return got

        conn._parse = counting
    else:
        conn._parse = None
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    for data in reads:
        conn.data_received(data)
        for _ in range(5):
            await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
    conn.connection_lost(None)
    await asyncio.sleep(0)
    return seen, b"".join(transport.out), transport.closed, taken


_NAMES = [
    "Host",
    "content-type",
    "Content-Type",
    "X-Request-Id",
    "x-fake-latency-ms",
    "Authorization",
    "ACCEPT",
    "User-Agent",
    "Connection",
    "Transfer-Encoding",
    "Upgrade",
    "Expect",
    "X-Weird_Name",
    "X Bad",
    "",
    "X-\u00e9",
]
_VALUES = [
    "application/json",
    "  padded  ",
    "\ttabbed\t",
    "",
    "a, b,c",
    "keep-alive",
    "close",
    "Keep-Alive",
    "upgrade",
    "chunked",
    "100-continue",
    "caf\u00e9",
    "x\x01y",
    "Bearer sk-123",
]


_PLAIN_NAMES = _NAMES[:8]
_PLAIN_VALUES = ["application/json", "  padded  ", "\ttabbed\t", "", "a, b,c", "Bearer sk-123"]


def _request(rng: random.Random) -> bytes:
    """Half plain requests as clients send them, half anything."""
    plain = rng.random() < 0.5
    names, values = (_PLAIN_NAMES, _PLAIN_VALUES) if plain else (_NAMES, _VALUES)
    method = rng.choice(["POST"] * 6 + ["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "get", "FOO"])
    path = rng.choice(["/v1/chat/completions", "/", "*", "/a?b=1&c", "/%20x", "/\u00e9"])
    version = rng.choice(["HTTP/1.1"] * 8 + ["HTTP/1.0", "HTTP/2.0"])
    body = bytes(rng.choice(b'{}[]":, abc\xff\x00') for _ in range(rng.choice([0, 1, 10, 75, 300])))
    headers = [(rng.choice(names), rng.choice(values)) for _ in range(rng.randint(0, 6))]
    length = rng.random()
    if length < 0.8:
        headers.insert(rng.randint(0, len(headers)), ("Content-Length", str(len(body))))
    elif length < 0.85:
        headers.append(("Content-Length", f"00{len(body)}"))
    elif length < 0.9:
        headers += [("Content-Length", str(len(body)))] * 2
    elif length < 0.95:
        headers.append(("content-length", f"{len(body)}x"))
    else:
        headers.append(("content-length", "99999"))  # over the limit: 413
    eol = "\r\n" if rng.random() < 0.95 else "\n"
    head = f"{method} {path} {version}{eol}" + "".join(f"{n}: {v}{eol}" for n, v in headers)
    return (head + eol).encode("utf-8") + body


def _reads(rng: random.Random) -> list[bytes]:
    data = _request(rng)
    shape = rng.random()
    if shape < 0.6:
        return [data]
    if shape < 0.75:  # pipelined
        return [data + _request(rng)]
    if shape < 0.9:  # split across reads
        cut = rng.randint(1, len(data))
        return [data[:cut], data[cut:]]
    return [data, _request(rng)]  # two requests, one after the other


async def test_compiled_parser_dispatches_what_httptools_does() -> None:
    rng = random.Random(20261202)
    taken = 0
    for i in range(3000):
        reads = _reads(rng)
        native = await _serve(reads, compiled=True)
        reference = await _serve(reads, compiled=False)
        assert native[:3] == reference[:3], (i, reads)
        taken += native[3]
    assert taken > 600  # the generator reaches the compiled path often


async def test_compiled_parser_on_plain_requests() -> None:
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
    cases = [
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n"
        b"X-Request-Id: r1\r\nx-request-id: r2\r\n\r\n%s" % (len(body), body),
        b"GET /v1/models HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"POST /x HTTP/1.1\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
        b"POST /x HTTP/1.1\r\nX-Empty:\r\nX-Pad:   v  \r\nContent-Length: 2\r\n\r\n{}",
    ]
    for data in cases:
        native = await _serve([data], compiled=True)
        assert native[3] == 1, data
        assert native[:3] == (await _serve([data], compiled=False))[:3], data
    seen = (await _serve([cases[0]], compiled=True))[0]
    assert seen == [
        (
            "POST",
            "/v1/chat/completions",
            "x=1",
            [("host", "a"), ("content-length", str(len(body))), ("x-request-id", "r2")],
            body,
        )
    ]


def test_the_compiled_parser_is_built() -> None:
    """The test venv has the compiled module (make venv builds it): no silent fallback."""
    from switchman_native import _native

    assert http_server._parse_request is _native.parse_request


async def test_requests_without_the_compiled_parser(
    make_sidecar: SidecarFactory, monkeypatch: Any
) -> None:
    """A build without cargo: httptools parses every request and answer, and the
    sidecar answers."""
    from switchman_sidecar.http import client as http_client

    monkeypatch.setattr(http_server, "_parse_request", None)
    monkeypatch.setattr(http_client, "_parse_response", None)
    sidecar: Sidecar = await make_sidecar()
    async with httpx.AsyncClient(base_url=sidecar.url) as client:
        for _ in range(3):  # keep-alive: several requests on one connection
            answer = await client.post(
                "/v1/chat/completions",
                json={"model": "best", "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-request-id": "no-native"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-switchman-request-id"] == "no-native"
        missing = await client.get("/v1/nothing")
        assert missing.status_code == 404


# -- the upstream's answers (http/client.py) -------------------------------------------


def _answer(rng: random.Random) -> bytes:
    """Half plain answers as providers send them, half anything."""
    plain = rng.random() < 0.5
    names, values = (_PLAIN_NAMES, _PLAIN_VALUES) if plain else (_NAMES, _VALUES)
    version = rng.choice(["HTTP/1.1"] * 8 + ["HTTP/1.0", "HTTP/2"])
    status = rng.choice(["200 OK"] * 6 + ["200", "429 Too Many", "500 x", "204 No", "101 S", "20x"])
    body = bytes(rng.choice(b'{}[]":, abc\xff\x00') for _ in range(rng.choice([0, 1, 10, 500])))
    headers = [(rng.choice(names), rng.choice(values)) for _ in range(rng.randint(0, 6))]
    length = rng.random()
    if length < 0.75:
        headers.insert(rng.randint(0, len(headers)), ("Content-Length", str(len(body))))
    elif length < 0.8:
        headers += [("Content-Length", str(len(body)))] * 2
    elif length < 0.9:  # chunked
        headers.append(("Transfer-Encoding", "chunked"))
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    # else: no length at all, a body until the connection closes
    eol = "\r\n" if rng.random() < 0.95 else "\n"
    head = f"{version} {status}{eol}" + "".join(f"{n}: {v}{eol}" for n, v in headers)
    return (head + eol).encode("utf-8") + body


class _UpTransport:
    def write(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


def _read_answer(reads: list[bytes], compiled: bool) -> tuple[Any, ...]:
    """What the upstream connection made of ``reads`` for one request, and
    whether the compiled parser took it."""
    from switchman_sidecar.http import client as http_client

    pool = http_client._Pool(http_client.Origin.parse("http://127.0.0.1:9"), None, 4)
    conn = http_client._Conn(pool)
    conn.connection_made(_UpTransport())  # type: ignore[arg-type]
    taken = False
    if compiled:
        assert conn.parse is not None
        parse = conn.parse

        def counting(data: bytes, limit: int) -> Any:
            nonlocal taken
            got = parse(data, limit)
            taken = got is not None
            return got

        conn.parse = counting
    else:
        conn.parse = None
    conn.reset()
    for data in reads:
        conn.data_received(data)
    head = conn.head
    assert head is not None
    state: Any = None
    if head.done():
        state = repr(head.exception()) if head.exception() else "ok"
    seen = (
        state,
        conn.status if state == "ok" else None,
        list(conn.headers),
        b"".join(conn.body),
        conn.complete,
        conn.keep_alive if state == "ok" else None,
        repr(conn.error),
    )
    if head.done() and head.exception():
        head.exception()  # retrieved
    return seen, taken


async def test_compiled_answer_parser_reads_what_httptools_does() -> None:
    rng = random.Random(1202)
    taken = 0
    for i in range(3000):
        data = _answer(rng)
        shape = rng.random()
        if shape < 0.7:
            reads = [data]
        elif shape < 0.85:
            cut = rng.randint(1, len(data))
            reads = [data[:cut], data[cut:]]
        else:
            reads = [data + _answer(rng)]  # more than one answer in a read
        native, took = _read_answer(reads, compiled=True)
        reference, _ = _read_answer(reads, compiled=False)
        assert native == reference, (i, reads)
        taken += took
    assert taken > 400


def test_the_compiled_answer_parser_is_built() -> None:
    from switchman_native import _native

    from switchman_sidecar.http import client as http_client

    assert http_client._parse_response is _native.parse_response


# -- the shared data: recorded OpenAI interactions as raw HTTP -----------------------

_CASSETTES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "openai" / "cassettes"


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when built in (the cassettes take seconds with the Python one)."""


def _body(side: dict[str, Any]) -> bytes:
    if "parsed_body" in side:
        return json.dumps(side["parsed_body"], ensure_ascii=False).encode()
    body = side.get("body")
    if isinstance(body, dict):
        body = body.get("string", "")
    return body.encode() if isinstance(body, str) else bytes(body or b"")


def _recorded() -> list[tuple[bytes, bytes]]:
    """Each recorded interaction as the request a client would send us and the
    answer a provider would send back (lengths recomputed, no compression)."""
    out = []
    for path in sorted(_CASSETTES.glob("*.yaml")):
        data = yaml.load(path.read_text(), Loader=_LOADER)  # noqa: S506 (a safe loader)
        for it in data.get("interactions", []):
            req, resp = it["request"], it["response"]
            body = _body(req)
            target = urlsplit(req["uri"])
            where = target.path + ("?" + target.query if target.query else "")
            lines = [f"{req['method']} {where} HTTP/1.1"]
            for name, values in req["headers"].items():
                if name.lower() not in ("content-length", "transfer-encoding"):
                    lines += [f"{name}: {v}" for v in values]
            lines.append(f"content-length: {len(body)}")
            request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
            body = _body(resp)
            status = resp["status"]
            lines = [f"HTTP/1.1 {status['code']} {status['message']}"]
            for name, values in resp["headers"].items():
                skip = ("content-length", "transfer-encoding", "content-encoding")
                if name.lower() not in skip:
                    lines += [f"{name}: {v}" for v in values]
            lines.append(f"content-length: {len(body)}")
            answer = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
            out.append((request, answer))
    return out


async def test_recorded_interactions_parse_the_same() -> None:
    recorded = _recorded()
    assert len(recorded) > 200
    requests = answers = 0
    for request, answer in recorded:
        native = await _serve([request], compiled=True)
        assert native[:3] == (await _serve([request], compiled=False))[:3]
        requests += native[3] or len(request.partition(b"\r\n\r\n")[2]) > 4096
        got, took = _read_answer([answer], compiled=True)
        assert got == _read_answer([answer], compiled=False)[0]
        answers += took
    # Recorded clients and providers send plain messages: the compiled path takes
    # them (but requests over _serve's 4096-byte limit, which httptools refuses).
    assert requests == len(recorded) and answers == len(recorded)


async def test_huge_and_unicode_messages() -> None:
    huge = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "é" * 900}]}, ensure_ascii=False
    )
    body = huge.encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    native = await _serve([request], compiled=True)
    assert native[3] == 1 and native[:3] == (await _serve([request], compiled=False))[:3]
    # Over the server's limit (4096 here): httptools answers 413, as without it.
    big = b"x" * 5000
    over = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)
    native = await _serve([over], compiled=True)
    assert native[3] == 0 and native[:3] == (await _serve([over], compiled=False))[:3]
    assert b" 413 " in native[1]
    # An answer larger than the read-pause threshold (1 MiB): httptools' path.
    blob = b"a" * ((1 << 20) + 1)
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(blob), blob)
    got, took = _read_answer([answer], compiled=True)
    assert not took and got == _read_answer([answer], compiled=False)[0]
    # Unicode in a header value (obs-text) or the target: httptools decides.
    for odd in ("POST /caf\u00e9 HTTP/1.1\r\n\r\n", "POST / HTTP/1.1\r\nx-name: caf\u00e9\r\n\r\n"):
        native = await _serve([odd.encode()], compiled=True)
        assert native[3] == 0 and native[:3] == (await _serve([odd.encode()], compiled=False))[:3]
    # An empty buffer.
    from switchman_native import _native

    assert _native.parse_request(b"", 10) is None
    assert _native.parse_response(b"", 10) is None
