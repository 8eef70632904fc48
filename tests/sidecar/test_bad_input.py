"""Raw bad input: every case gets an OpenAI- (or Anthropic-) shaped error, the
sidecar keeps serving, and nothing secret comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from switchman_sidecar.main import Sidecar

USER = b'{"role": "user", "content": "x"}'


@pytest.fixture
async def http(sidecar: Sidecar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as client:
        yield client


def assert_openai_error(
    resp: httpx.Response, status: int, param: str | None = None
) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    err = resp.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert "type" in err and "code" in err and "param" in err
    if param is not None:
        assert err["param"] == param
    assert "sk-secret" not in resp.text
    return dict(err)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'"just a string"', None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": 5, "messages": []}', "model"),
        (b'{"model": "gpt-4o", "messages": "hello"}', "messages"),
        (b'{"model": "gpt-4o", "messages": []}', "messages"),
        (b'{"model": "gpt-4o", "messages": [42]}', "messages[0]"),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": 7}]}',
            "messages[0].content",
        ),
        (
            b'{"model": "gpt-4o", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}',
            "stream",
        ),
        (
            b'{"model": "gpt-4o", "max_tokens": -1, "messages": [' + USER + b"]}",
            "max_tokens",
        ),
        (
            b'{"model": "gpt-4o", "temperature": "hot", "messages": [' + USER + b"]}",
            "temperature",
        ),
    ],
)
async def test_bad_chat_bodies(http: httpx.AsyncClient, body: bytes, param: str | None) -> None:
    resp = await http.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert_openai_error(resp, 400, param)


async def test_unknown_model(http: httpx.AsyncClient, records: Any, sidecar: Sidecar) -> None:
    resp = await http.post(
        "/v1/chat/completions",
        json={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]},
    )
    err = assert_openai_error(resp, 404, "model")
    assert err["code"] == "model_not_found"
    assert len(records(sidecar)) == 1  # one record per request, rejected ones too


async def test_bad_anthropic_bodies_are_anthropic_shaped(http: httpx.AsyncClient) -> None:
    resp = await http.post(
        "/v1/messages", json={"model": "claude", "messages": [{"role": "user", "content": "x"}]}
    )
    assert resp.status_code == 400
    assert (
        resp.json()["type"] == "error" and resp.json()["error"]["type"] == "invalid_request_error"
    )
    resp = await http.post("/v1/messages", content=b"{oops")
    assert resp.status_code == 400 and resp.json()["type"] == "error"


async def test_unknown_path_and_method(http: httpx.AsyncClient) -> None:
    assert_openai_error(await http.post("/v1/nothing", json={}), 404)
    assert_openai_error(await http.get("/v1/chat/completions"), 405)


async def test_oversized_body(make_sidecar: Any) -> None:
    sidecar = await make_sidecar(max_body_bytes=2000)
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as http:
        big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 5000}]}
        assert_openai_error(await http.post("/v1/chat/completions", json=big), 413)
        ok = {"model": "gpt-4o", "messages": [{"role": "user", "content": "small"}]}
        assert (await http.post("/v1/chat/completions", json=ok)).status_code == 200


async def test_chunked_oversized_body(make_sidecar: Any) -> None:
    sidecar = await make_sidecar(max_body_bytes=2000)

    async def gen() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 500

    async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as http:
        resp = await http.post("/v1/chat/completions", content=gen())
    assert resp.status_code == 413


async def raw_port(sidecar: Sidecar) -> int:
    return int(sidecar.url.rsplit(":", 1)[1])


async def test_slow_client_gets_408(make_sidecar: Any) -> None:
    sidecar = await make_sidecar(header_timeout_s=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", await raw_port(sidecar))
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
    async with asyncio.timeout(5):
        data = await reader.read()  # the sidecar answers and closes
    writer.close()
    assert data.startswith(b"HTTP/1.1 408")
    assert b'"error"' in data


async def test_garbage_http_gets_400(sidecar: Sidecar) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", await raw_port(sidecar))
    writer.write(b"\x00\x01 NOT HTTP\r\n\r\n")
    async with asyncio.timeout(5):
        data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 400")


async def test_client_disconnect_before_answer_still_records_usage(
    sidecar: Sidecar, records: Any, wait_records: Any
) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", await raw_port(sidecar))
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}'
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-fake-latency-ms: 100\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    writer.close()
    await wait_records(sidecar, 1)
    assert records(sidecar)[0].output_tokens > 0  # the provider answered; it is charged


async def test_keep_alive_and_pipelined_requests(sidecar: Sidecar) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", await raw_port(sidecar))
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
    one = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    writer.write(one + one)
    seen = b""
    async with asyncio.timeout(5):
        while seen.count(b"echo: hi") < 2:
            seen += await reader.read(65536)
    writer.close()
    assert seen.count(b"HTTP/1.1 200") == 2


async def test_error_bodies_never_carry_credentials(http: httpx.AsyncClient) -> None:
    resp = await http.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-fake-status": "401", "x-fake-error-message": "bad key"},
    )
    assert resp.status_code == 502
    assert "sk-secret" not in resp.text and "sk-secret" not in str(resp.headers)
