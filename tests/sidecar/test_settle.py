"""Sidecar.settle(): start-up objects, PII word lists included, are frozen for the collector."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Awaitable, Callable

import httpx

from switchman_sidecar.main import Sidecar
from switchman_sidecar.pii.gazetteer import load_gazetteer


async def test_settle_freezes_the_word_lists_after_they_loaded(
    make_sidecar: Callable[..., Awaitable[Sidecar]],
) -> None:
    sidecar: Sidecar = await make_sidecar()
    try:
        await sidecar.settle()
        # The loader thread is done: the lists are there, and frozen (the
        # collector's own list of objects, which skips frozen ones, lacks them).
        assert all(not thread.is_alive() for thread in sidecar._loaders)
        lists = [getattr(load_gazetteer(), f.name) for f in dataclasses.fields(load_gazetteer())]
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
