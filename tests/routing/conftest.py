"""Route tables for routing tests, built as protos (what the sidecar receives)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from switchman_fake import FakeUpstream
from switchman_protocol.v1 import routes_pb2 as pb
from switchman_sidecar.main import Sidecar
from switchman_sidecar.settings import SidecarSettings
from switchman_sidecar.table import parse_table
from switchman_sidecar.usage import InMemoryUsageSink


def model(
    name: str,
    price: float,
    quality: float,
    by_task: dict[str, float] | None = None,
    caps: tuple[str, ...] = ("tools", "json", "streaming"),
    weight: int = 1,
    context: int = 128_000,
) -> pb.Model:
    return pb.Model(
        name=name,
        provider=pb.PROVIDER_OPENAI,
        upstream_model=name,
        endpoint="http://127.0.0.1:1/v1",
        price=pb.Price(input_per_mtok=price, output_per_mtok=price * 4),
        quality=pb.Quality(overall=quality, by_task=by_task or {}),
        capabilities=list(caps),
        weight=weight,
        context_window=context,
    )


def three_models() -> list[pb.Model]:
    return [
        model("big", 5.0, 0.92, {"code": 0.95, "math": 0.9}),
        model("mid", 1.0, 0.80, {"code": 0.70, "math": 0.85}, caps=("json",)),
        model("small", 0.1, 0.60, {"chat": 0.8, "code": 0.4}),
    ]


@pytest.fixture
def make_table() -> Callable[..., pb.RouteTable]:
    def build(**kw: Any) -> pb.RouteTable:
        table = pb.RouteTable(team="t", models=kw.pop("models", three_models()))
        for key, value in kw.items():
            if key == "aliases":
                table.aliases.update(value)
            elif key == "rules":
                table.rules.extend(value)
            elif key == "fallbacks":
                table.fallbacks.extend(value)
            elif isinstance(value, (pb.RouterParams, pb.Cascade, pb.OutputBudget, pb.ShadowPolicy)):
                getattr(table, key).CopyFrom(value)
            else:
                setattr(table, key, value)
        return table

    return build


@pytest.fixture
def make_model() -> Callable[..., pb.Model]:
    return model


# -- component fixtures: the fake upstream and a real sidecar on 127.0.0.1:0 --------


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    await upstream.start()
    yield upstream
    await upstream.close()


@pytest.fixture
async def start_sidecar() -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[Sidecar]]]:
    started: list[Sidecar] = []

    async def factory(table: dict[str, Any]) -> Sidecar:
        settings = SidecarSettings(
            port=0,
            admin_port=0,
            forward_header_prefixes=("x-fake-",),
            access_log=False,
            log_usage=False,
        )
        sidecar = Sidecar(settings, sink=InMemoryUsageSink())
        sidecar.store.apply(parse_table(table))
        await sidecar.start()
        started.append(sidecar)
        return sidecar

    yield factory
    for sidecar in started:
        await sidecar.close()
