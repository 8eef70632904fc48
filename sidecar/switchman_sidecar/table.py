"""Route tables: one pipeline behind both sources (YAML file and operator).

``TableStore.apply`` checks a table, builds everything derived from it (the
router, the PII engine, parsed endpoints, the retry policy) and swaps it in
with one attribute assignment, so a request sees either the old table or the
new one, never a mix. A table that cannot be applied raises ``TableRejected``
and the previous table stays: the operator client NACKs with its message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.adapters import Adapter, adapter_for
from switchman_sidecar.http.client import Origin
from switchman_sidecar.pii import PiiEngine
from switchman_sidecar.resilience import BreakerRegistry, RetryPolicy
from switchman_sidecar.routing import Router
from switchman_sidecar.usage import Usage, cost_at

__all__ = [
    "CompiledTable",
    "ModelFacts",
    "TableRejected",
    "TableStore",
    "load_table_file",
    "parse_table",
]

PROVIDER_NAMES = {
    routes_pb2.PROVIDER_OPENAI: "openai",
    routes_pb2.PROVIDER_ANTHROPIC: "anthropic",
    routes_pb2.PROVIDER_GEMINI: "gemini",
    routes_pb2.PROVIDER_AZURE_OPENAI: "azure-openai",
    routes_pb2.PROVIDER_OPENAI_COMPATIBLE: "openai-compatible",
}


class TableRejected(ValueError):
    """The table cannot be applied; the message says why (it goes into the NACK)."""


def parse_table(data: Any) -> routes_pb2.RouteTable:
    """A dict shaped like the RouteTable proto (snake_case or lowerCamelCase)."""
    if not isinstance(data, dict):
        raise TableRejected("a route table must be a mapping")
    table = routes_pb2.RouteTable()
    try:
        json_format.ParseDict(data, table)
    except json_format.ParseError as exc:
        raise TableRejected(f"route table does not match the RouteTable schema: {exc}") from exc
    return table


def load_table_file(path: Path) -> routes_pb2.RouteTable:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TableRejected(f"cannot read {path}: {exc}") from exc
    return parse_table(data)


class ModelFacts:
    """What the request path reads of a model, as plain attributes.

    Every read of a protobuf field (``model.name``, ``model.price.input_per_mtok``)
    costs a C call and a new Python object; the request path made dozens per
    request. These are read once when the table is compiled.
    """

    __slots__ = (
        "adapter",
        "cached_price",
        "context_window",
        "endpoint",
        "input_price",
        "limited",
        "max_output_tokens",
        "model",
        "name",
        "origin",
        "output_price",
        "provider",
    )

    def __init__(self, model: routes_pb2.Model, origin: Origin) -> None:
        self.model = model
        self.name: str = model.name
        self.provider: str = PROVIDER_NAMES.get(model.provider, "")
        self.adapter: Adapter = adapter_for(model.provider)
        self.origin = origin
        self.endpoint: str = model.endpoint
        self.context_window: int = model.context_window
        self.max_output_tokens: int = model.max_output_tokens
        self.limited: bool = model.HasField("limits")
        price = model.price
        self.input_price: float = price.input_per_mtok
        self.cached_price: float = price.cached_input_per_mtok or price.input_per_mtok
        self.output_price: float = price.output_per_mtok

    def cost(self, usage: Usage) -> float:
        """``usage.cost_of(usage, model.price)`` without reading the protobuf."""
        return cost_at(usage, self.input_price, self.cached_price, self.output_price)


@dataclass(slots=True)
class CompiledTable:
    """A table plus everything derived from it; immutable once published."""

    table: routes_pb2.RouteTable
    router: Router
    pii: PiiEngine
    models: dict[str, routes_pb2.Model]
    policy: RetryPolicy
    applied_at: float
    facts: dict[str, ModelFacts]
    """Model name → its fields as plain attributes and its parsed endpoint (``origin``);
    the request path reads these."""
    team: str = ""


def compile_table(table: routes_pb2.RouteTable) -> CompiledTable:
    models: dict[str, routes_pb2.Model] = {}
    origins: dict[str, Origin] = {}
    for model in table.models:
        if not model.name:
            raise TableRejected("every model needs a name")
        if model.name in models:
            raise TableRejected(f"model {model.name!r} appears twice")
        if model.provider not in PROVIDER_NAMES:
            raise TableRejected(f"model {model.name!r} has no supported provider")
        if not model.endpoint:
            raise TableRejected(f"model {model.name!r} has no endpoint")
        try:
            origins[model.name] = Origin.parse(model.endpoint)
        except ValueError as exc:
            raise TableRejected(f"model {model.name!r}: {exc}") from exc
        models[model.name] = model
    for chain in table.fallbacks:
        for name in [chain.model, *chain.fallbacks]:
            if name not in models:
                raise TableRejected(f"fallback chain names unknown model {name!r}")
    try:
        router = Router(table)
        pii = PiiEngine(table.pii)
    except ValueError as exc:
        raise TableRejected(str(exc)) from exc
    return CompiledTable(
        table=table,
        router=router,
        pii=pii,
        models=models,
        policy=RetryPolicy.from_table(table),
        applied_at=time.time(),
        facts={name: ModelFacts(m, origins[name]) for name, m in models.items()},
        team=table.team,
    )


class TableStore:
    """Holds the current table. ``current`` is None until the first apply."""

    def __init__(self) -> None:
        self.current: CompiledTable | None = None
        self.breakers = BreakerRegistry()
        self.last_error: str = ""
        self.applied = 0
        self.rejected = 0
        self.on_apply: list[Callable[[CompiledTable], None]] = []
        """Called with each table just swapped in (the sidecar freezes it for the
        collector, see ``Sidecar.settle``)."""

    def apply(self, table: routes_pb2.RouteTable) -> CompiledTable:
        try:
            compiled = compile_table(table)
        except TableRejected as exc:
            self.rejected += 1
            self.last_error = str(exc)
            raise
        self.current = compiled
        self.applied += 1
        self.last_error = ""
        for callback in self.on_apply:
            callback(compiled)
        return compiled

    @property
    def version(self) -> str:
        return self.current.table.version if self.current else ""
