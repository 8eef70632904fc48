"""Per-attempt timeouts with one event-loop timer for all of them.

``asyncio.timeout`` creates a timer handle per use, and on uvloop a timer
handle is a libuv timer (allocate, start, stop, close): with the context
manager's own bookkeeping that measured ~10-20 µs per attempt, a large share
of the sidecar's whole request cost. Attempts here only join an
insertion-ordered dict per timeout length (deadlines in one bucket are in
order, since the loop clock only moves forward) and leave it when done; a
single timer fires at the earliest deadline and cancels the tasks whose
deadline passed, exactly as ``asyncio.timeout`` would (the task is
``uncancel``-ed and the caller sees ``TimeoutError``).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from types import TracebackType

from switchman_sidecar import eager

__all__ = ["DeadlineWatch"]


class _Scope:
    """``async with watch.timeout(s):`` — one attempt's deadline."""

    __slots__ = (
        "_baseline",
        "_bucket",
        "_fallback",
        "_key",
        "_seconds",
        "_task",
        "_watch",
        "deadline",
        "fired",
    )

    def __init__(self, watch: DeadlineWatch, seconds: float) -> None:
        self._watch = watch
        self._seconds = seconds
        self._fallback: asyncio.Timeout | None = None
        self.deadline = 0.0
        self.fired = False

    def enter(self) -> bool:
        """Starts the deadline for the current task without ``async with`` (no
        coroutine objects per attempt). False: not ours to watch (no task, or
        another loop's): use ``async with`` instead, which falls back to
        ``asyncio.timeout``. A True ``enter`` must be paired with ``exit``."""
        watch = self._watch
        # asyncio.get_running_loop() (also inside current_task()) makes a getpid()
        # system call; the watch's own loop, on its own thread, is known already.
        if watch._loop is not None and watch._thread_id == threading.get_ident():
            loop = watch._loop
        else:
            loop = asyncio.get_running_loop()
        task = eager.current_task(loop)
        if task is None or (watch._loop is not None and loop is not watch._loop):
            return False
        if watch._loop is None:
            watch._loop = loop
            watch._thread_id = threading.get_ident()
        self._task = task
        self._baseline = task.cancelling()
        self.fired = False
        self.deadline = deadline = loop.time() + self._seconds
        self._key = key = next(watch._ids)
        bucket = watch._buckets.get(self._seconds)
        if bucket is None:
            bucket = watch._buckets[self._seconds] = {}
        bucket[key] = self
        self._bucket = bucket
        if watch._timer is None or deadline < watch._timer_at:
            watch._arm(loop, deadline)
        return True

    def exit(self, exc_type: type[BaseException] | None, exc: BaseException | None) -> None:
        """Ends the deadline; raises TimeoutError if it cancelled the task (as
        ``asyncio.timeout`` does)."""
        bucket = self._bucket
        bucket.pop(self._key, None)
        if not bucket and self._watch._buckets.get(self._seconds) is bucket:
            del self._watch._buckets[self._seconds]
        expired = self.fired and self._task.uncancel() <= self._baseline
        if expired and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    async def __aenter__(self) -> None:
        if not self.enter():
            self._fallback = asyncio.timeout(self._seconds)  # not ours to watch
            await self._fallback.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fallback is not None:
            await self._fallback.__aexit__(exc_type, exc, tb)
            return
        self.exit(exc_type, exc)


class DeadlineWatch:
    """One per event loop (the pipeline's)."""

    def __init__(self) -> None:
        self._buckets: dict[float, dict[int, _Scope]] = {}
        self._ids = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id = 0

    def timeout(self, seconds: float) -> _Scope:
        """Like ``asyncio.timeout(seconds)`` for the current task."""
        return _Scope(self, seconds)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = loop.call_at(when, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        earliest: float | None = None
        for seconds, bucket in list(self._buckets.items()):
            for key, entry in list(bucket.items()):
                if entry.deadline > now:
                    if earliest is None or entry.deadline < earliest:
                        earliest = entry.deadline
                    break  # the rest of this bucket is later still
                del bucket[key]
                entry.fired = True
                entry._task.cancel()
            if not bucket:
                del self._buckets[seconds]
        if earliest is not None:
            self._arm(loop, earliest)

    @property
    def pending(self) -> int:
        return sum(len(b) for b in self._buckets.values())
