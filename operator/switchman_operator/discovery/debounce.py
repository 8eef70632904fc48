"""Debounce: merge bursts of changes into one push (quiet period plus a hard cap).

A free function, as in Istio's pilot: it reads change keys from a queue and
calls ``push`` with the merged set once no change arrived for ``quiet``
seconds, or ``max_delay`` after the first change of the burst, whichever
comes first. One push runs at a time; changes arriving during it form the
next burst.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

__all__ = ["debounce"]

K = TypeVar("K", bound=Hashable)


async def debounce(
    changes: asyncio.Queue[K],
    push: Callable[[set[K]], Awaitable[None]],
    quiet: float,
    max_delay: float,
    clock: Callable[[], float] | None = None,
) -> None:
    """Run forever (until cancelled): coalesce keys from ``changes`` into calls of ``push``."""
    loop = asyncio.get_running_loop()
    now = clock or loop.time
    while True:
        pending: set[K] = {await changes.get()}
        first = last = now()
        while True:
            deadline = min(last + quiet, first + max_delay)
            timeout = deadline - now()
            if timeout <= 0:
                break
            try:
                key = await asyncio.wait_for(changes.get(), timeout)
            except TimeoutError:
                break
            pending.add(key)
            last = now()
        while not changes.empty():
            pending.add(changes.get_nowait())
        await push(pending)
