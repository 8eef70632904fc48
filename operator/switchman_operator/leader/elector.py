"""The election loop: read the Lease, ``decide``, write, repeat every retry period.

``is_leader()`` is what gated code asks; it re-checks the renew deadline on
every call, so a leader whose API calls hang stops acting on time even if this
loop is stuck in a call. Losing the lease is not fatal: the replica keeps
serving (streams, webhook, counting) and stays a candidate.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..kube import Conflict
from .decide import (
    Action,
    LeaseRecord,
    Observation,
    Timing,
    decide,
    next_record,
    observe,
    released_record,
    still_leading,
    wait_seconds,
)
from .lease import LeaseApi
from .settings import LeaderSettings

__all__ = ["LeaderElector", "elector_for"]

log = logging.getLogger(__name__)

_RELEASE_ATTEMPTS = 3


class LeaseStore(Protocol):
    async def get(self) -> LeaseRecord | None: ...
    async def write(self, record: LeaseRecord, create: bool) -> LeaseRecord: ...


class LeaderElector:
    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        timing: Timing,
        on_change: Callable[[bool], None] = lambda leading: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store, self.identity, self.timing = store, identity, timing
        self.on_change, self.clock, self.wall = on_change, clock, wall
        self._seen: Observation | None = None
        self._last_renew_sent: float | None = None
        self._leading = False

    def is_leader(self) -> bool:
        return self._leading and still_leading(self._last_renew_sent, self.clock(), self.timing)

    def _set_leading(self, leading: bool, why: str) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        log.warning(
            "%s leadership as %s (%s)", "acquired" if leading else "lost", self.identity, why
        )
        self.on_change(leading)

    async def step(self) -> float:
        """One round; returns how long to sleep before the next."""
        retry = self.timing.retry_period_seconds
        sent = self.clock()
        call_timeout = max(0.1, self.timing.renew_deadline_seconds / 2)
        try:
            async with asyncio.timeout(call_timeout):
                record = await self.store.get()
            self._seen = observe(self._seen, record, self.clock())
            action = decide(self._seen, self.clock(), self.identity)
            if action is Action.WAIT:
                self._set_leading(False, f"held by {record.holder if record else '?'}")
                return wait_seconds(self._seen, self.clock(), self.timing) or retry
            new = next_record(action, record, self.identity, self.wall(), self.timing)
            async with asyncio.timeout(call_timeout):
                written = await self.store.write(new, create=action is Action.CREATE)
            self._seen = observe(self._seen, written, self.clock())
            self._last_renew_sent = sent
            self._set_leading(True, action.value)
        except Conflict:
            log.info("lease write lost a race; re-reading")
        except Exception as exc:  # API down, timeout: keep trying until the deadline
            log.warning("leader election: %s: %s", type(exc).__name__, exc)
        if self._leading and not still_leading(self._last_renew_sent, self.clock(), self.timing):
            self._set_leading(False, "renew deadline passed")
        return retry

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            pause = await self.step()
            # asyncio.timeout, not wait_for: no helper tasks that kopf's shutdown sweep
            # (it cancels tasks spawned after it started) could cancel under us.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await stop.wait()

    async def release(self) -> None:
        """Clean shutdown: stop acting, then hand the Lease back so a candidate need not wait.

        The Lease is re-read rather than trusted from memory: a renewal cancelled at
        shutdown still runs to completion in its worker thread, so the version seen
        last may be stale (a PUT with it would get 409 and the Lease would be left to
        expire). Versioned writes keep this safe against that late renewal: whichever
        lands second conflicts, and a conflict here re-reads and tries again.
        """
        self._set_leading(False, "shutting down")
        if self._last_renew_sent is None:
            return  # never held it
        budget = max(1.0, self.timing.renew_deadline_seconds / 2)
        try:
            async with asyncio.timeout(budget):
                for _ in range(_RELEASE_ATTEMPTS):
                    record = await self.store.get()
                    if record is None or record.holder != self.identity:
                        return
                    try:
                        await self.store.write(released_record(record, self.wall()), create=False)
                    except Conflict:
                        continue
                    log.warning("released the lease as %s", self.identity)
                    return
                log.warning("could not release the lease: it kept changing")
        except Exception as exc:  # the lease will simply expire
            log.warning("could not release the lease: %s: %s", type(exc).__name__, exc)


def elector_for(
    settings: LeaderSettings, api_client: Any, on_change: Callable[[bool], None]
) -> LeaderElector | None:
    """The operator's elector, or None (and ``on_change(True)``) when election is off."""
    if not settings.enabled:
        on_change(True)
        return None
    timing = settings.timing
    store = LeaseApi(
        api_client, settings.lease_namespace, settings.lease_name, timing.retry_period_seconds
    )
    log.info(
        "leader election on: lease %s/%s as %s",
        settings.lease_namespace,
        settings.lease_name,
        settings.identity,
    )
    return LeaderElector(store, settings.identity, timing, on_change)
