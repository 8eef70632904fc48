"""Leader election decisions, pure: given what was observed of the Lease and when.

The rules are client-go's (``tools/leaderelection``), because the subtle part
is clock skew: a candidate never compares the Lease's ``renewTime`` (the
holder's wall clock) with its own clock. It remembers *when it saw the record
change* on its own monotonic clock, and takes over only after a full lease
duration has passed since then without change. The holder, in turn, stops
acting as leader once ``renew_deadline_seconds`` have passed since it *sent*
its last successful renewal. Since ``renew_deadline < lease_duration`` and a
candidate can only have seen that renewal after it was sent, the old leader
has stopped before anyone else may start (with monotonic clocks that tick at
about the same rate; no agreement on wall time is needed).

Everything here is a function of its arguments; ``elector.py`` does the I/O.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

__all__ = [
    "Action",
    "LeaseRecord",
    "Observation",
    "Timing",
    "decide",
    "next_record",
    "observe",
    "released_record",
    "still_leading",
]


@dataclass(frozen=True, slots=True)
class Timing:
    """The three knobs, in seconds (client-go / controller-runtime defaults)."""

    #: How long a candidate waits after the record last changed before taking over.
    lease_duration_seconds: float = 15.0
    #: How long the holder keeps acting without a successful renewal.
    renew_deadline_seconds: float = 10.0
    #: How often the holder renews and candidates look.
    retry_period_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_seconds < self.renew_deadline_seconds:
            raise ValueError("leader election: need 0 < retry period < renew deadline")
        if not self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError("leader election: need renew deadline < lease duration")


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The fields of a coordination.k8s.io/v1 Lease that election uses."""

    holder: str  # "" when released or never held
    lease_duration_seconds: int
    acquire_time: dt.datetime | None
    renew_time: dt.datetime | None
    transitions: int
    resource_version: str = ""  # the precondition of the next write (not compared)

    def same_as(self, other: LeaseRecord) -> bool:
        """Equal apart from resourceVersion: has the holder done anything since?"""
        return (
            self.holder == other.holder
            and self.renew_time == other.renew_time
            and self.acquire_time == other.acquire_time
            and self.lease_duration_seconds == other.lease_duration_seconds
            and self.transitions == other.transitions
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """The last record read and the local monotonic time it was first seen in that form."""

    record: LeaseRecord | None
    changed_at: float


class Action(enum.Enum):
    CREATE = "create"  # no Lease yet: create it holding it
    ACQUIRE = "acquire"  # free or expired: take it over (a transition)
    RENEW = "renew"  # ours: refresh renewTime
    WAIT = "wait"  # someone else holds a live lease


def observe(previous: Observation | None, record: LeaseRecord | None, now: float) -> Observation:
    """Fold a fresh read into what we know; the clock restarts only on a change."""
    if previous is not None:
        if record is None and previous.record is None:
            return previous
        if record is not None and previous.record is not None and record.same_as(previous.record):
            return Observation(record, previous.changed_at)  # keep the newer resourceVersion
    return Observation(record, now)


def decide(seen: Observation, now: float, me: str) -> Action:
    """What this candidate should do with the Lease right now."""
    record = seen.record
    if record is None:
        return Action.CREATE
    if record.holder == me:
        return Action.RENEW
    if not record.holder:
        return Action.ACQUIRE
    # A holder that wrote a duration of 0 or less gets no grace at all.
    if now >= seen.changed_at + max(record.lease_duration_seconds, 0):
        return Action.ACQUIRE
    return Action.WAIT


def wait_seconds(seen: Observation, now: float, timing: Timing) -> float:
    """How long a WAITing candidate may sleep: until expiry, at most one retry period."""
    record = seen.record
    if record is None:
        return 0.0
    left = seen.changed_at + record.lease_duration_seconds - now
    return max(0.0, min(timing.retry_period_seconds, left))


def next_record(
    action: Action,
    current: LeaseRecord | None,
    me: str,
    wall_now: dt.datetime,
    timing: Timing,
) -> LeaseRecord:
    """The record to write for CREATE / ACQUIRE / RENEW (with ``current``'s version)."""
    if action is Action.WAIT:
        raise ValueError("nothing to write while waiting")
    duration = max(1, round(timing.lease_duration_seconds))
    if action is Action.RENEW and current is not None and current.holder == me:
        return LeaseRecord(
            holder=me,
            lease_duration_seconds=duration,
            acquire_time=current.acquire_time or wall_now,
            renew_time=wall_now,
            transitions=current.transitions,
            resource_version=current.resource_version,
        )
    transitions = 0 if current is None else current.transitions + (current.holder != me)
    return LeaseRecord(
        holder=me,
        lease_duration_seconds=duration,
        acquire_time=wall_now,
        renew_time=wall_now,
        transitions=transitions,
        resource_version="" if current is None else current.resource_version,
    )


def released_record(current: LeaseRecord, wall_now: dt.datetime) -> LeaseRecord:
    """What a leader writes on clean shutdown: no holder, so a candidate takes over at once."""
    return LeaseRecord(
        holder="",
        lease_duration_seconds=1,
        acquire_time=current.acquire_time,
        renew_time=wall_now,
        transitions=current.transitions,
        resource_version=current.resource_version,
    )


def still_leading(last_renew_sent: float | None, now: float, timing: Timing) -> bool:
    """The holder's own check: leading only within the renew deadline of its last renewal."""
    return last_renew_sent is not None and now < last_renew_sent + timing.renew_deadline_seconds
