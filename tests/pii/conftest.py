"""Fixtures: the fake upstream and a PII-enabled sidecar in front of it (127.0.0.1:0)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from switchman_fake import FakeUpstream
from switchman_sidecar.main import Sidecar
from switchman_sidecar.settings import SidecarSettings
from switchman_sidecar.table import parse_table
from switchman_sidecar.usage import InMemoryUsageSink

PRICE = {"input_per_mtok": 1.0, "cached_input_per_mtok": 0.5, "output_per_mtok": 2.0}


def _model(name: str, provider: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": provider,
        "upstream_model": f"{name}-upstream",
        "endpoint": endpoint,
        "credential": {"api_key": f"sk-{name}"},
        "price": PRICE,
        "context_window": 128000,
        "max_output_tokens": 4096,
        **extra,
    }


def pii_table(fake_url: str, pii: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "pii-1",
        "namespace": "team-a",
        "team": "team-a",
        "models": [
            _model("gpt-4o", "PROVIDER_OPENAI", fake_url + "/v1"),
            _model("claude", "PROVIDER_ANTHROPIC", fake_url),
            _model(
                "onprem", "PROVIDER_OPENAI_COMPATIBLE", fake_url + "/v1", compliance=["self-hosted"]
            ),
        ],
        "aliases": {"best": "gpt-4o"},
        "fallbacks": [{"model": "gpt-4o", "fallbacks": ["onprem"]}],
        "pii": {"enabled": True, **pii},
        "resilience": {"max_retries": 0, "per_try_timeout_ms": 5000},
    }


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    await upstream.start()
    yield upstream
    await upstream.close()


@pytest.fixture
async def pii_sidecar(fake: FakeUpstream) -> AsyncIterator[Callable[..., Awaitable[Sidecar]]]:
    started: list[Sidecar] = []

    async def factory(pii: dict[str, Any] | None = None) -> Sidecar:
        settings = SidecarSettings(
            port=0,
            admin_port=0,
            forward_header_prefixes=("x-fake-",),
            access_log=False,
            log_usage=False,
        )
        sidecar = Sidecar(settings, sink=InMemoryUsageSink())
        sidecar.store.apply(parse_table(pii_table(fake.url, pii or {})))
        await sidecar.start()
        started.append(sidecar)
        return sidecar

    yield factory
    for s in started:
        await s.close()
