"""Provider adapters: translate the canonical request (OpenAI chat shape) into
each provider's wire format and its answers (whole or streamed) back."""

from __future__ import annotations

from switchman_sidecar import _compiled

_compiled.extend(__path__, "adapters")  # compiled modules first, when built
# ruff: noqa: E402 (the imports below must see the extended __path__)

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.adapters.anthropic import AnthropicAdapter
from switchman_sidecar.adapters.base import (
    Adapter,
    StreamDecoder,
    UpstreamCall,
    UpstreamStreamError,
)
from switchman_sidecar.adapters.gemini import GeminiAdapter
from switchman_sidecar.adapters.openai import AzureOpenAIAdapter, OpenAIAdapter

__all__ = [
    "Adapter",
    "StreamDecoder",
    "UpstreamCall",
    "UpstreamStreamError",
    "adapter_for",
]

_ADAPTERS: dict[int, Adapter] = {
    routes_pb2.PROVIDER_OPENAI: OpenAIAdapter(),
    routes_pb2.PROVIDER_OPENAI_COMPATIBLE: OpenAIAdapter(compatible=True),
    routes_pb2.PROVIDER_AZURE_OPENAI: AzureOpenAIAdapter(),
    routes_pb2.PROVIDER_ANTHROPIC: AnthropicAdapter(),
    routes_pb2.PROVIDER_GEMINI: GeminiAdapter(),
}


def adapter_for(provider: int) -> Adapter:
    """Adapters are stateless; one instance per provider kind serves every request."""
    return _ADAPTERS[provider]
