"""The election loop against an in-memory Lease with versioned writes (like the API server)."""

from __future__ import annotations

import asyncio
import dataclasses

from switchman_operator.kube import Conflict
from switchman_operator.leader.decide import LeaseRecord, Timing
from switchman_operator.leader.elector import LeaderElector

T = Timing(lease_duration_seconds=4, renew_deadline_seconds=3, retry_period_seconds=0.5)


class MemoryLease:
    """One Lease; a write must carry the current resourceVersion or it gets Conflict."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0

    async def get(self) -> LeaseRecord | None:
        return self.record

    async def write(self, record: LeaseRecord, create: bool) -> LeaseRecord:
        current = self.record.resource_version if self.record else None
        if (self.record is None) != create or (not create and record.resource_version != current):
            raise Conflict("stale")
        self.version += 1
        self.record = dataclasses.replace(record, resource_version=str(self.version))
        return self.record


def test_release_hands_the_lease_back_even_after_a_renewal_it_never_saw() -> None:
    async def scenario() -> None:
        store = MemoryLease()
        elector = LeaderElector(store, "me", T)
        await elector.step()
        assert elector.is_leader() and store.record and store.record.holder == "me"
        # A renewal cancelled at shutdown still lands (its PUT runs in a worker thread),
        # so the version the elector remembers is stale by the time it releases.
        assert store.record is not None
        await store.write(dataclasses.replace(store.record), create=False)
        await elector.release()
        assert not elector.is_leader()
        assert store.record is not None and store.record.holder == ""

    asyncio.run(scenario())


def test_release_leaves_someone_elses_lease_and_a_never_held_one_alone() -> None:
    async def scenario() -> None:
        store = MemoryLease()
        other = LeaderElector(store, "other", T)
        await other.step()
        me = LeaderElector(store, "me", T)
        await me.step()  # sees a live lease: waits
        assert not me.is_leader()
        await me.release()
        assert store.record is not None and store.record.holder == "other"
        # Held once, then taken over (after expiry) by someone else: not ours to free.
        await other.release()
        assert store.record.holder == ""
        await me.step()
        assert me.is_leader()
        assert store.record is not None
        await store.write(dataclasses.replace(store.record, holder="third"), create=False)
        await me.release()
        assert store.record.holder == "third"

    asyncio.run(scenario())
