"""Sidecar.settle(): start-up objects, PII word lists included, are frozen for the collector."""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from switchman_fake import FakeUpstream
from switchman_protocol import featurize
from switchman_sidecar.main import Sidecar
from switchman_sidecar.pii import gazetteer, native
from switchman_sidecar.table import TableStore, parse_table

from .conftest import make_table


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
async def test_settle_freezes_the_word_lists_after_they_loaded(
    make_sidecar: Callable[..., Awaitable[Sidecar]],
    monkeypatch: pytest.MonkeyPatch,
    compiled: bool,
) -> None:
    monkeypatch.setattr(gazetteer, "_LOADED", None)
    monkeypatch.setattr(native, "_PROCESS", None)
    if not compiled:
        monkeypatch.setattr(native, "PiiScanner", None)  # a build without switchman_native
    sidecar: Sidecar = await make_sidecar()
    try:
        await sidecar.settle()
        assert all(not thread.is_alive() for thread in sidecar._loaders)
        if compiled:
            # One copy of the lists, the compiled scanner's (outside the collector's
            # reach); the Python lists are not loaded at all.
            assert native._PROCESS is not None and gazetteer._LOADED is None
        else:
            # The lists are there, and frozen (the collector's own list of objects,
            # which skips frozen ones, lacks them).
            loaded = gazetteer._LOADED
            assert loaded is not None
            lists = [getattr(loaded, f.name) for f in dataclasses.fields(loaded)]
            assert lists and all(len(words) > 0 for words in lists)
            scanned = {id(obj) for obj in gc.get_objects()}
            assert not [words for words in lists if id(words) in scanned]
        # Still serving afterwards.
        async with httpx.AsyncClient(base_url=sidecar.url) as client:
            answer = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert answer.status_code == 200, answer.text
    finally:
        gc.unfreeze()


def _rich_table(fake_url: str, version: str) -> dict[str, Any]:
    """A table with every derived part that holds objects: rules, a PII policy
    with a custom entity, fallbacks, aliases and a learned router."""
    dim = 64
    return make_table(
        fake_url,
        version=version,
        rules=[
            {"name": "long", "when": "request.input_tokens > 100000", "route_to": "claude"},
            {"name": "tools", "when": "'tools' in request.needs", "strategy": "STRATEGY_COST"},
        ],
        pii={
            "enabled": True,
            "default_action": "PII_ACTION_REDACT",
            "custom": [{"name": "EMPLOYEE_ID", "regex": "EMP-[0-9]{6}"}],
        },
        fallbacks=[{"model": "gpt-4o", "fallbacks": ["claude"]}],
        router={
            "kind": "learned",
            "learned": {
                "featurizer": featurize.FEATURIZER,
                "feature_dim": dim,
                "heads": [
                    {"model": "gpt-4o", "weights": [0.01] * dim, "bias": 0.5},
                    {"model": "claude", "weights": [-0.01] * dim, "bias": 0.2},
                ],
            },
        },
    )


async def test_tables_applied_after_settle_are_frozen_too(
    make_sidecar: Callable[..., Awaitable[Sidecar]], fake: FakeUpstream
) -> None:
    """Operator mode: the first table (and every later one) arrives after start-up."""
    sidecar: Sidecar = await make_sidecar()
    try:
        await sidecar.settle()
        for version in ("operator-1", "operator-2"):
            compiled = sidecar.store.apply(parse_table(_rich_table(fake.url, version)))
            parts = [compiled.facts, compiled.models, compiled.router, compiled.pii]
            scanned = {id(obj) for obj in gc.get_objects()}
            assert not [part for part in parts if id(part) in scanned], version
        async with httpx.AsyncClient(base_url=sidecar.url) as client:
            answer = await client.post(
                "/v1/chat/completions",
                json={"model": "best", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-switchman-model"] == "gpt-4o"
    finally:
        gc.unfreeze()


async def test_tables_are_not_frozen_before_settle(
    make_sidecar: Callable[..., Awaitable[Sidecar]], fake: FakeUpstream
) -> None:
    """In-process (tests, embedding) nothing is frozen unless settle() was called."""
    sidecar: Sidecar = await make_sidecar()
    compiled = sidecar.store.apply(parse_table(_rich_table(fake.url, "in-process")))
    assert id(compiled.facts) in {id(obj) for obj in gc.get_objects()}


def test_a_replaced_table_is_freed_without_the_collector() -> None:
    """Frozen objects are never collected, so a table must not need the collector
    to be freed once it is replaced: it holds no reference cycles. With the
    collector off, replacing a table by one of the same shape leaves exactly as
    many tracked objects as before (cyclic garbage would stay and add up)."""
    store = TableStore()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for version in ("warm-1", "warm-2"):  # caches (regexes, CEL programs) filled
            store.apply(parse_table(_rich_table("http://127.0.0.1:1", version)))
        gc.collect()
        old = store.apply(parse_table(_rich_table("http://127.0.0.1:1", "c")))
        router_type = type(old.router)
        routers = sum(type(obj) is router_type for obj in gc.get_objects())
        ref = weakref.ref(old.pii)  # the router takes no weak reference when compiled
        del old
        counts = []
        for version in ("d", "e", "f"):
            store.apply(parse_table(_rich_table("http://127.0.0.1:1", version)))
            counts.append(len(gc.get_objects()))
        assert ref() is None
        assert sum(type(obj) is router_type for obj in gc.get_objects()) == routers
        assert counts[0] == counts[1] == counts[2], counts
    finally:
        if enabled:
            gc.enable()
