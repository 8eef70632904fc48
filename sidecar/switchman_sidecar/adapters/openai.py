"""OpenAI, Azure OpenAI and OpenAI-compatible servers (vLLM, Ollama, llama.cpp).

The canonical request already is OpenAI's shape, so this adapter only swaps
the model id, asks for stream usage, and sets the right URL and auth.
"""

from __future__ import annotations

from typing import Any

import orjson

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.adapters.base import UpstreamCall, UpstreamStreamError
from switchman_sidecar.adapters.sse import SseParser
from switchman_sidecar.http.client import Origin
from switchman_sidecar.usage import Usage, usage_from_openai

__all__ = ["AzureOpenAIAdapter", "OpenAIAdapter", "OpenAIStreamDecoder", "openai_error_message"]

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


class OpenAIAdapter:
    supports = frozenset({"chat", "embeddings", "responses"})
    native_chat = True

    def __init__(self, compatible: bool = False) -> None:
        self.provider = "openai-compatible" if compatible else "openai"

    def _headers(self, model: routes_pb2.Model) -> list[tuple[str, str]]:
        headers = [_JSON, _ACCEPT]
        if model.credential.api_key:
            headers.append(("authorization", "Bearer " + model.credential.api_key))
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

    def _headers(self, model: routes_pb2.Model) -> list[tuple[str, str]]:
        headers = [_JSON, _ACCEPT]
        if model.credential.api_key:
            headers.append(("api-key", model.credential.api_key))
        return headers

    def _target(self, api: str, model: routes_pb2.Model, origin: Origin) -> str:
        version = model.api_version or self.default_api_version
        if api == "responses":
            return f"{origin.base_path}/openai/responses?api-version={version}"
        deployment = model.upstream_model or model.name
        return (
            f"{origin.base_path}/openai/deployments/{deployment}{_PATHS[api]}?api-version={version}"
        )
