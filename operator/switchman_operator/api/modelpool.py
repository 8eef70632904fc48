"""ModelPool: the models a namespace may use, with prices and credentials."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import LIST_MAP, NAME_PATTERN, RateLimits, Schema, SecretKeyRef, StatusBase, cel

Provider = Literal["openai", "azure-openai", "anthropic", "gemini", "openai-compatible"]
Capability = Literal["tools", "vision", "json", "streaming", "embeddings", "reasoning", "responses"]


class Pricing(Schema):
    """USD per million tokens."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.cachedInputPerMTok) || self.cachedInputPerMTok <= self.inputPerMTok",
                    "cachedInputPerMTok must not exceed inputPerMTok",
                    ".cachedInputPerMTok",
                )
            ]
        }
    )
    input_per_m_tok: float = Field(ge=0, le=10000, alias="inputPerMTok")
    cached_input_per_m_tok: float | None = Field(
        default=None, ge=0, le=10000, alias="cachedInputPerMTok"
    )
    output_per_m_tok: float = Field(ge=0, le=10000, alias="outputPerMTok")


class Quality(Schema):
    """Expected answer quality in [0, 1], overall and per task kind."""

    overall: float = Field(ge=0, le=1)
    by_task: dict[str, float] | None = Field(
        default=None,
        description="Task kind (code, math, extraction, chat, ...) to score in [0, 1].",
    )


class ModelSpec(Schema):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(self.provider in ['azure-openai', 'openai-compatible']) "
                    "|| has(self.endpoint)",
                    "endpoint is required for azure-openai and openai-compatible models",
                    ".endpoint",
                ),
                cel(
                    "self.provider != 'azure-openai' || has(self.apiVersion)",
                    "apiVersion is required for azure-openai models",
                    ".apiVersion",
                ),
                cel(
                    "!(self.provider in ['openai', 'azure-openai', 'anthropic', 'gemini']) "
                    "|| has(self.credentials)",
                    "credentials are required for hosted providers",
                    ".credentials",
                ),
                cel(
                    "!has(self.maxOutputTokens) || self.maxOutputTokens <= self.contextWindow",
                    "maxOutputTokens must not exceed contextWindow",
                ),
            ]
        }
    )
    name: str = Field(
        pattern=NAME_PATTERN, max_length=63, description="Logical name apps and policies use."
    )
    provider: Provider
    model: str = Field(min_length=1, max_length=256, description="The provider's model id.")
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
        description="Base URL; defaults to the provider's public API.",
    )
    api_version: str | None = Field(default=None, max_length=64, description="Azure API version.")
    credentials: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the provider API key."
    )
    pricing: Pricing
    context_window: int = Field(ge=1, le=100_000_000)
    max_output_tokens: int | None = Field(default=None, ge=1, le=100_000_000)
    capabilities: list[Capability] | None = None
    quality: Quality | None = None
    region: str | None = Field(default=None, max_length=64)
    compliance: list[str] | None = Field(
        default=None, description="Tags such as gdpr, self-hosted, hipaa."
    )
    limits: RateLimits | None = None
    weight: int = Field(default=1, ge=0, le=1000, description="Share in weighted splits.")


class ModelPoolSpec(Schema):
    models: list[ModelSpec] = Field(min_length=1, max_length=64, json_schema_extra=LIST_MAP)


class ModelHealth(Schema):
    name: str
    ready: bool
    latency_ms: float | None = None
    error_rate: float | None = None
    message: str | None = None


class ModelPoolStatus(StatusBase):
    model_count: int | None = None
    ready_models: int | None = None
    models: list[ModelHealth] | None = None
