"""The fake upstream server: routing by path, steering, recording, timing.

Start it in-process (``await FakeUpstream().start()`` → base URL, port 0 on
127.0.0.1) or as a process (``python -m switchman_fake --port 9000``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from switchman_fake import anthropic_api, gemini_api, openai_api
from switchman_fake.answers import build_answer, last_user_text, prompt_chars
from switchman_fake.steering import Steering, split_steer_path
from switchman_sidecar.http.server import HttpServer, Request, ResponseWriter, serve

__all__ = ["FakeUpstream", "Received", "default_cassette_dir"]


def default_cassette_dir() -> Path:
    env = os.environ.get("SWITCHMAN_CASSETTES")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data" / "openai" / "cassettes"


@dataclass(slots=True)
class Received:
    """One request as it arrived: what left the pod."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    raw: bytes


class FakeUpstream:
    def __init__(
        self, record_limit: int = 10_000, cassette_dir: Path | None = None, record: bool = True
    ) -> None:
        self.received: collections.deque[Received] = collections.deque(maxlen=record_limit)
        self._record = record
        self._cassette_dir = cassette_dir or default_cassette_dir()
        self._cassettes: dict[str, list[dict[str, Any]]] = {}
        self._failures: dict[str, int] = collections.defaultdict(int)
        self._ids = itertools.count(1)
        self._server: HttpServer | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = await serve(self.handle, host, port)
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return self._server.url

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    def clear(self) -> None:
        self.received.clear()
        self._failures.clear()

    # dispatch ------------------------------------------------------------
    async def handle(self, req: Request, w: ResponseWriter) -> None:
        steer_text, path = split_steer_path(req.path)
        try:
            body = orjson.loads(req.body) if req.body else None
        except orjson.JSONDecodeError:
            body = None
        if self._record:
            self.received.append(Received(req.method, path, req.query, req.headers, body, req.body))
        steering = Steering.from_sources(steer_text, req.headers)
        if path.endswith("/models") and req.method == "GET":
            w.send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
            return
        if path.endswith("/v1/messages"):
            kind = "anthropic"
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            kind = "gemini"
        else:
            kind = "openai"
        if not isinstance(body, dict):
            await self._error(w, kind, 400, "body must be a JSON object", steering)
            return
        if steering.fail_first:
            key = steering.key or path
            self._failures[key] += 1
            if self._failures[key] <= steering.fail_first:
                status = steering.status if steering.status != 200 else 503
                await self._error(w, kind, status, "injected failure", steering)
                return
        elif steering.status != 200:
            await self._error(w, kind, steering.status, "injected failure", steering)
            return
        if steering.cassette:
            await self._replay(w, steering)
            return
        rid = f"{next(self._ids):08d}"
        if kind == "anthropic":
            await self._anthropic(w, body, steering, rid)
        elif kind == "gemini":
            await self._gemini(w, path, req.query, body, steering)
        elif path.endswith("/embeddings"):
            await self._embeddings(w, body, steering)
        elif path.endswith("/responses"):
            await self._responses(w, body, steering, rid)
        else:
            await self._chat(w, body, steering, rid)

    async def _error(
        self, w: ResponseWriter, kind: str, status: int, msg: str, s: Steering
    ) -> None:
        if s.latency_ms:
            await asyncio.sleep(s.latency_ms / 1000)
        message = s.error_message or msg
        render = {"anthropic": anthropic_api.error_body, "gemini": gemini_api.error_body}.get(
            kind, openai_api.error_body
        )
        headers = [("content-type", "application/json")]
        if s.retry_after:
            headers.append(("retry-after", s.retry_after))
        w.send(status, headers, render(status, message))

    async def _send(self, w: ResponseWriter, s: Steering, body: bytes) -> None:
        if s.latency_ms:
            await asyncio.sleep(s.latency_ms / 1000)
        w.send(200, [("content-type", "application/json")], body)

    async def _stream(self, w: ResponseWriter, s: Steering, frames: list[bytes]) -> None:
        if s.latency_ms:
            await asyncio.sleep(s.latency_ms / 1000)
        w.start(200, [("content-type", "text/event-stream"), ("cache-control", "no-cache")])
        for i, frame in enumerate(frames):
            if i == 0 and s.ttft_ms:
                await asyncio.sleep(s.ttft_ms / 1000)
            elif i and s.drip_ms:
                await asyncio.sleep(s.drip_ms / 1000)
            if s.cut_after >= 0 and i >= s.cut_after:
                w._conn.close()  # mid-stream cut: no terminating chunk
                return
            await w.write(frame)
        w.end()

    # APIs ----------------------------------------------------------------
    async def _chat(self, w: ResponseWriter, body: dict[str, Any], s: Steering, rid: str) -> None:
        messages = body.get("messages") or []
        tools = [t.get("function", {}).get("name", "") for t in body.get("tools") or []]
        answer = build_answer(s, last_user_text(messages), tools, messages)
        model = str(body.get("model", "fake"))
        if body.get("stream"):
            opts = body.get("stream_options") or {}
            usage = bool(opts.get("include_usage")) and not s.no_usage
            await self._stream(
                w, s, openai_api.chat_frames(answer, model, "chatcmpl-" + rid, usage)
            )
        else:
            await self._send(
                w, s, openai_api.chat_body(answer, model, "chatcmpl-" + rid, not s.no_usage)
            )

    async def _embeddings(self, w: ResponseWriter, body: dict[str, Any], s: Steering) -> None:
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else [str(x) for x in raw or []]
        tokens = s.input_tokens if s.input_tokens >= 0 else max(1, prompt_chars(inputs) // 4)
        encoding = str(body.get("encoding_format") or "float")
        model = str(body.get("model", "fake"))
        await self._send(w, s, openai_api.embeddings_body(inputs, model, encoding, tokens))

    async def _responses(
        self, w: ResponseWriter, body: dict[str, Any], s: Steering, rid: str
    ) -> None:
        raw = body.get("input")
        text = raw if isinstance(raw, str) else last_user_text(raw if isinstance(raw, list) else [])
        tools = [str(t.get("name", "")) for t in body.get("tools") or [] if isinstance(t, dict)]
        answer = build_answer(s, text, tools, raw)
        model = str(body.get("model", "fake"))
        if body.get("stream"):
            await self._stream(w, s, openai_api.responses_frames(answer, model, "resp_" + rid))
        else:
            await self._send(w, s, openai_api.responses_body(answer, model, "resp_" + rid))

    async def _anthropic(
        self, w: ResponseWriter, body: dict[str, Any], s: Steering, rid: str
    ) -> None:
        messages = body.get("messages") or []
        tools = [str(t.get("name", "")) for t in body.get("tools") or []]
        answer = build_answer(s, last_user_text(messages), tools, [body.get("system"), messages])
        model = str(body.get("model", "fake"))
        if body.get("stream"):
            await self._stream(w, s, anthropic_api.message_frames(answer, model, "msg_" + rid))
        else:
            await self._send(w, s, anthropic_api.message_body(answer, model, "msg_" + rid))

    async def _gemini(
        self, w: ResponseWriter, path: str, query: str, body: dict[str, Any], s: Steering
    ) -> None:
        contents = body.get("contents") or []
        tools = [
            str(f.get("name", ""))
            for t in body.get("tools") or []
            for f in t.get("functionDeclarations") or []
        ]
        answer = build_answer(s, last_user_text(contents), tools, body)
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        if ":streamGenerateContent" in path:
            await self._stream(w, s, gemini_api.generate_frames(answer, model))
        else:
            await self._send(w, s, gemini_api.generate_body(answer, model))

    # cassettes -----------------------------------------------------------
    def cassette(self, name: str) -> list[dict[str, Any]]:
        if name not in self._cassettes:
            path = self._cassette_dir / f"{name}.yaml"
            data = yaml.safe_load(path.read_text())
            self._cassettes[name] = list(data.get("interactions") or [])
        return self._cassettes[name]

    async def _replay(self, w: ResponseWriter, s: Steering) -> None:
        name, _, index = s.cassette.partition("#")
        try:
            interaction = self.cassette(name)[int(index or 0)]
        except (OSError, IndexError, ValueError, yaml.YAMLError) as exc:
            w.send(
                404, [("content-type", "application/json")], openai_api.error_body(404, str(exc))
            )
            return
        resp = interaction["response"]
        status = int(resp.get("status", {}).get("code", 200))
        headers = {k.lower(): v[0] for k, v in (resp.get("headers") or {}).items() if v}
        ctype = headers.get("content-type", "application/json")
        if "parsed_body" in resp:
            await self._send_status(w, s, status, ctype, orjson.dumps(resp["parsed_body"]))
            return
        text = str((resp.get("body") or {}).get("string", ""))
        if ctype.startswith("text/event-stream"):
            frames = [part.encode() + b"\n\n" for part in text.split("\n\n") if part.strip()]
            await self._stream(w, s, frames)
        else:
            await self._send_status(w, s, status, ctype, text.encode())

    async def _send_status(
        self, w: ResponseWriter, s: Steering, status: int, ctype: str, body: bytes
    ) -> None:
        if s.latency_ms:
            await asyncio.sleep(s.latency_ms / 1000)
        w.send(status, [("content-type", ctype)], body)
