"""Fixtures: the fake upstream and a sidecar in front of it, both on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import uvloop

from switchman_fake import FakeUpstream
from switchman_sidecar.main import Sidecar
from switchman_sidecar.settings import SidecarSettings
from switchman_sidecar.table import parse_table
from switchman_sidecar.usage import InMemoryUsageSink

PRICE = {"input_per_mtok": 2.5, "cached_input_per_mtok": 1.25, "output_per_mtok": 10.0}


def model(name: str, provider: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": provider,
        "upstream_model": extra.pop("upstream_model", f"{name}-upstream"),
        "endpoint": endpoint,
        "credential": {"api_key": f"sk-secret-{name}", "secret_ref": f"team-a/keys/{name}"},
        "price": PRICE,
        "context_window": extra.pop("context_window", 128000),
        "max_output_tokens": 4096,
        **extra,
    }


def make_table(fake_url: str, **extra: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "version": "test-1",
        "namespace": "team-a",
        "team": "team-a",
        "models": [
            model("gpt-4o", "PROVIDER_OPENAI", fake_url + "/v1"),
            model("claude", "PROVIDER_ANTHROPIC", fake_url),
            model("gemini", "PROVIDER_GEMINI", fake_url + "/v1beta"),
            model("azure", "PROVIDER_AZURE_OPENAI", fake_url, api_version="2024-10-21"),
            model("local", "PROVIDER_OPENAI_COMPATIBLE", fake_url + "/v1"),
        ],
        "aliases": {"best": "gpt-4o"},
        "resilience": {
            "max_retries": 2,
            "backoff_base_ms": 1,
            "backoff_max_ms": 5,
            "per_try_timeout_ms": 5000,
        },
    }
    table.update(extra)
    return table


_HERE = Path(__file__).parent


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Any:
    """The sidecar runs on uvloop in production; so do its tests (and only these)."""
    if _HERE in Path(str(item.path)).parents:
        return {"uvloop": uvloop.new_event_loop}
    return None


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    await upstream.start()
    yield upstream
    await upstream.close()


SidecarFactory = Callable[..., Awaitable[Sidecar]]


@pytest.fixture
async def make_sidecar(fake: FakeUpstream) -> AsyncIterator[SidecarFactory]:
    started: list[Sidecar] = []

    async def factory(table: dict[str, Any] | None = None, **settings: Any) -> Sidecar:
        base: dict[str, Any] = {
            "port": 0,
            "admin_port": 0,
            "forward_header_prefixes": ("x-fake-",),
            "access_log": False,
            "log_usage": False,
        }
        base.update(settings)
        sidecar = Sidecar(SidecarSettings(**base), sink=InMemoryUsageSink())
        sidecar.store.apply(parse_table(table if table is not None else make_table(fake.url)))
        await sidecar.start()
        started.append(sidecar)
        return sidecar

    yield factory
    for sidecar in started:
        await sidecar.close()


@pytest.fixture
async def sidecar(make_sidecar: SidecarFactory) -> Sidecar:
    return await make_sidecar()


def _records(sidecar: Sidecar) -> list[Any]:
    if sidecar.lane is not None:
        sidecar.lane.settle()  # its records follow its answers by microseconds
    sink = sidecar.sinks.sinks[0]
    assert isinstance(sink, InMemoryUsageSink)
    return list(sink.records)


@pytest.fixture
def records() -> Callable[[Sidecar], list[Any]]:
    """The usage records a sidecar produced (its in-memory sink)."""
    return _records


@pytest.fixture
async def sdk() -> AsyncIterator[Callable[..., openai.AsyncOpenAI]]:
    """AsyncOpenAI clients pointed at a sidecar; closed after the test."""
    clients: list[openai.AsyncOpenAI] = []

    def factory(sidecar: Sidecar, **headers: str) -> openai.AsyncOpenAI:
        c = openai.AsyncOpenAI(
            base_url=sidecar.url + "/v1",
            api_key="unused",
            default_headers=headers,
            max_retries=0,
            timeout=10,
        )
        clients.append(c)
        return c

    yield factory
    for c in clients:
        await c.close()


@pytest.fixture
def wait_records() -> Callable[[Sidecar, int], Awaitable[None]]:
    async def wait(sidecar: Sidecar, count: int) -> None:
        sink = sidecar.sinks.sinks[0]
        assert isinstance(sink, InMemoryUsageSink)
        await sink.wait(count)

    return wait


@pytest.fixture
def table_for() -> Callable[..., dict[str, Any]]:
    return make_table


@pytest.fixture
def model_for() -> Callable[..., dict[str, Any]]:
    return model
