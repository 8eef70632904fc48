"""OpenAI, Azure OpenAI and OpenAI-compatible servers (vLLM, Ollama, llama.cpp).

The canonical request already is OpenAI's shape, so this adapter only swaps
the model id, asks for stream usage, and sets the right URL and auth.
"""

from __future__ import annotations

from typing import Any

import orjson

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.adapters.base import UpstreamCall, UpstreamStreamError
from switchman_sidecar.adapters.sse import SseParser, parse_block
from switchman_sidecar.http.client import Origin
from switchman_sidecar.usage import Usage, usage_from_openai

__all__ = [
    "AzureOpenAIAdapter",
    "OpenAIAdapter",
    "OpenAIPassthroughDecoder",
    "OpenAIStreamDecoder",
    "openai_error_message",
]

_JSON = ("content-type", "application/json")
_ACCEPT = ("accept-encoding", "identity")
_PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings", "responses": "/responses"}


def openai_error_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode("utf-8", "replace")
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return str(err["message"])
    if isinstance(err, str):
        return err
    return raw[:200].decode("utf-8", "replace")


def _asks_usage(body: dict[str, Any]) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


class OpenAIStreamDecoder:
    """Chunks are already canonical; we only pick up usage and the end marker."""

    __slots__ = ("_sse", "finished", "usage")

    def __init__(self) -> None:
        self._sse = SseParser()
        self.usage: Usage | None = None
        self.finished = False

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _event, payload in self._sse.feed(data):
            if payload == "[DONE]":
                self.finished = True
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk and "choices" not in chunk:
                raise UpstreamStreamError(openai_error_message(payload.encode()))
            usage = chunk.get("usage")
            if usage:
                self.usage = usage_from_openai(usage)
            out.append(chunk)
        return out


_NULL_USAGE_TAIL = b',"usage":null}'
_TEMPLATE_KEYS = ("id", "object", "created", "model")


def stream_chars(chunk: dict[str, Any]) -> int:
    """Characters of text and tool-call arguments in one chunk (for estimates)."""
    n = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta")
        if not delta:
            continue
        content = delta.get("content")
        if content:
            n += len(content)
        for call in delta.get("tool_calls") or ():
            args = (call.get("function") or {}).get("arguments")
            if args:
                n += len(args)
    return n


class OpenAIPassthroughDecoder:
    """An OpenAI-family stream relayed to an OpenAI client with nothing to restore.

    Each event is still parsed (usage, the end marker, error events, characters
    for estimates, invalid events dropped), but what goes to the client is the
    provider's own event bytes: no re-encoding. The exceptions are re-encoded as
    ``OpenAIStreamDecoder`` plus the client encoder would: an event split over
    several ``data:`` lines or carrying a bare CR, one that is not valid UTF-8,
    and, when the client did not ask for usage (``hide_usage``), a chunk with a
    ``usage`` key — dropped when it has no choices, otherwise sent without it
    (the usual ``,"usage":null}`` tail is cut off the bytes instead).

    ``feed`` returns one entry per chunk read (``b""`` for a dropped one), so
    a non-empty list means "the stream has started", as with the dict decoder.
    """

    __slots__ = ("_sse", "chars", "finished", "hide_usage", "saw_usage", "template", "usage")

    def __init__(self, hide_usage: bool) -> None:
        self._sse = SseParser()
        self.hide_usage = hide_usage
        self.usage: Usage | None = None
        self.finished = False
        self.saw_usage = False
        """A chunk carried a non-empty usage object (the client's encoder needs no tail)."""
        self.chars = 0
        self.template: dict[str, Any] = {}
        """id, object, created, model of the first chunk that had any of them."""

    def feed(self, data: bytes) -> list[bytes]:
        blocks = self._sse.blocks(data)
        if not blocks:
            return []
        out: list[bytes] = []
        chars = 0
        loads = orjson.loads
        for block in blocks:
            # A bare CR is a line break to SSE: such events are re-encoded.
            if block.startswith(b"data: ") and b"\n" not in block and b"\r" not in block:
                payload = block[6:]
                raw = True
            else:
                parsed = parse_block(block)
                if parsed is None:
                    continue
                payload = parsed[1].encode()
                raw = False
            if payload == b"[DONE]":
                self.finished = True
                continue
            try:
                chunk = loads(payload)
            except orjson.JSONDecodeError:
                # As the dict decoder reads it: invalid UTF-8 replaced (then re-encoded).
                payload = payload.decode("utf-8", "replace").encode()
                try:
                    chunk = loads(payload)
                except orjson.JSONDecodeError:
                    continue
                raw = False
            if type(chunk) is not dict:
                continue
            if "error" in chunk and "choices" not in chunk:
                raise UpstreamStreamError(openai_error_message(payload))
            if not self.template:
                self.template = {k: chunk[k] for k in _TEMPLATE_KEYS if k in chunk}
            if "usage" in chunk:
                usage = chunk["usage"]
                if usage:
                    self.usage = usage_from_openai(usage)
                    self.saw_usage = True
                if self.hide_usage:
                    if not chunk.get("choices"):
                        out.append(b"")  # the usage chunk asked for on the client's behalf
                        continue
                    if (
                        raw
                        and usage is None
                        and payload.endswith(_NULL_USAGE_TAIL)
                        and payload.count(b'"usage"') == 1
                    ):
                        chars += stream_chars(chunk)
                        out.append(b"data: " + payload[:-14] + b"}\n\n")
                        continue
                    del chunk["usage"]
                    raw = False
            chars += stream_chars(chunk)
            out.append(block + b"\n\n" if raw else b"data: " + orjson.dumps(chunk) + b"\n\n")
        self.chars += chars
        return out


class OpenAIAdapter:
    supports = frozenset({"chat", "embeddings", "responses"})
    native_chat = True

    def __init__(self, compatible: bool = False) -> None:
        self.provider = "openai-compatible" if compatible else "openai"
        self._header_lists: dict[str, list[tuple[str, str]]] = {}
        """By API key: the same list (and strings, whose hashes are kept) for every
        request, so the client's cache of encoded heads hashes no new string.
        Shared, so never mutated (the pipeline adds headers by concatenation)."""

    def _headers(self, model: routes_pb2.Model) -> list[tuple[str, str]]:
        key = model.credential.api_key
        headers = self._header_lists.get(key)
        if headers is None:
            headers = self._auth_headers(key)
            if len(self._header_lists) >= 256:
                self._header_lists.clear()
            self._header_lists[key] = headers
        return headers

    def _auth_headers(self, api_key: str) -> list[tuple[str, str]]:
        headers = [_JSON, _ACCEPT]
        if api_key:
            headers.append(("authorization", "Bearer " + api_key))
        return headers

    def _target(self, api: str, model: routes_pb2.Model, origin: Origin) -> str:
        return origin.base_path + _PATHS[api]

    def chat_call(
        self,
        model: routes_pb2.Model,
        origin: Origin,
        body: dict[str, Any],
        stream: bool,
        raw: bytes | None = None,
    ) -> UpstreamCall:
        """``raw``: the client's bytes of ``body``, sent as they are when nothing would
        change (the model is the upstream's name; a stream already asks for usage)."""
        name = model.upstream_model or model.name
        if raw is not None and body.get("model") == name and (not stream or _asks_usage(body)):
            return UpstreamCall(self._target("chat", model, origin), self._headers(model), raw)
        out = dict(body)
        out["model"] = name
        if stream:
            opts = out.get("stream_options")
            out["stream_options"] = {
                **(opts if isinstance(opts, dict) else {}),
                "include_usage": True,
            }
        return UpstreamCall(
            self._target("chat", model, origin), self._headers(model), orjson.dumps(out)
        )

    def chat_result(
        self, raw: bytes, model: routes_pb2.Model
    ) -> tuple[dict[str, Any], Usage | None]:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise ValueError("upstream answer is not a chat completion")
        return data, usage_from_openai(data.get("usage"))

    def chat_stream(self, model: routes_pb2.Model) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder()

    def passthrough_call(
        self, api: str, model: routes_pb2.Model, origin: Origin, body: dict[str, Any]
    ) -> UpstreamCall:
        out = dict(body)
        out["model"] = model.upstream_model or model.name
        return UpstreamCall(
            self._target(api, model, origin), self._headers(model), orjson.dumps(out)
        )

    def error_message(self, raw: bytes) -> str:
        return openai_error_message(raw)


class AzureOpenAIAdapter(OpenAIAdapter):
    """Deployment-scoped URLs, ``api-key`` auth, ``api-version`` query."""

    default_api_version = "2024-10-21"

    def __init__(self) -> None:
        super().__init__()
        self.provider = "azure-openai"

    def _auth_headers(self, api_key: str) -> list[tuple[str, str]]:
        headers = [_JSON, _ACCEPT]
        if api_key:
            headers.append(("api-key", api_key))
        return headers

    def _target(self, api: str, model: routes_pb2.Model, origin: Origin) -> str:
        version = model.api_version or self.default_api_version
        if api == "responses":
            return f"{origin.base_path}/openai/responses?api-version={version}"
        deployment = model.upstream_model or model.name
        return (
            f"{origin.base_path}/openai/deployments/{deployment}{_PATHS[api]}?api-version={version}"
        )
