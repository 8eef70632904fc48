"""Leader election decisions (pure): acquire / renew / wait, expiry on the local clock,
step-down at the renew deadline, and the Lease body round trip."""

from __future__ import annotations

import datetime as dt

import pytest

from switchman_operator.leader.decide import (
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
from switchman_operator.leader.lease import from_body, to_body
from switchman_operator.leader.settings import LeaderSettings

T = Timing(lease_duration_seconds=15, renew_deadline_seconds=10, retry_period_seconds=2)
WALL = dt.datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=dt.UTC)


def rec(holder: str, renew_s: int = 0, rv: str = "1", transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        lease_duration_seconds=15,
        acquire_time=WALL,
        renew_time=WALL + dt.timedelta(seconds=renew_s),
        transitions=transitions,
        resource_version=rv,
    )


def test_no_lease_means_create_and_free_lease_means_acquire() -> None:
    assert decide(observe(None, None, 100.0), 100.0, "me") is Action.CREATE
    assert decide(observe(None, rec(""), 100.0), 100.0, "me") is Action.ACQUIRE


def test_own_lease_is_renewed_even_if_it_looks_old() -> None:
    seen = observe(None, rec("me"), 0.0)
    assert decide(seen, 1000.0, "me") is Action.RENEW


def test_live_lease_of_another_holder_is_waited_for_until_a_full_duration_unchanged() -> None:
    seen = observe(None, rec("other", renew_s=0), 100.0)
    assert decide(seen, 100.0, "me") is Action.WAIT
    assert decide(seen, 114.9, "me") is Action.WAIT
    assert decide(seen, 115.0, "me") is Action.ACQUIRE
    # A renewal seen at 110 restarts the local clock: no takeover at 115.
    seen = observe(seen, rec("other", renew_s=2, rv="2"), 110.0)
    assert seen.changed_at == 110.0
    assert decide(seen, 115.0, "me") is Action.WAIT
    assert decide(seen, 125.0, "me") is Action.ACQUIRE


def test_expiry_ignores_the_holders_wall_clock() -> None:
    # renewTime far in the past (skewed holder clock) but just seen changing: still live.
    stale_looking = rec("other", renew_s=-3600)
    seen = observe(None, stale_looking, 50.0)
    assert decide(seen, 51.0, "me") is Action.WAIT
    # ...and a renewTime in the future does not extend it either.
    seen = observe(None, rec("other", renew_s=3600), 50.0)
    assert decide(seen, 65.0, "me") is Action.ACQUIRE


def test_rereading_the_same_record_keeps_the_clock_but_takes_the_new_version() -> None:
    first = observe(None, rec("other", rv="7"), 10.0)
    again = observe(first, rec("other", rv="8"), 14.0)
    assert again.changed_at == 10.0 and again.record is not None
    assert again.record.resource_version == "8"
    assert observe(Observation(None, 3.0), None, 9.0).changed_at == 3.0


def test_a_zero_duration_gives_no_grace() -> None:
    record = LeaseRecord("other", 0, WALL, WALL, 0, "1")
    assert decide(observe(None, record, 5.0), 5.0, "me") is Action.ACQUIRE


def test_wait_seconds_is_bounded_by_the_retry_period_and_expiry() -> None:
    seen = observe(None, rec("other"), 100.0)
    assert wait_seconds(seen, 100.0, T) == 2.0
    assert wait_seconds(seen, 114.5, T) == pytest.approx(0.5)
    assert wait_seconds(seen, 120.0, T) == 0.0


def test_next_record_counts_transitions_and_keeps_acquire_time_on_renew() -> None:
    later = WALL + dt.timedelta(seconds=30)
    created = next_record(Action.CREATE, None, "me", WALL, T)
    assert (created.holder, created.transitions, created.lease_duration_seconds) == ("me", 0, 15)
    assert created.resource_version == ""
    taken = next_record(Action.ACQUIRE, rec("other", transitions=3, rv="9"), "me", later, T)
    assert (taken.holder, taken.transitions, taken.acquire_time) == ("me", 4, later)
    assert taken.resource_version == "9"  # the precondition: lose the race, not overwrite
    renewed = next_record(Action.RENEW, rec("me", transitions=4, rv="10"), "me", later, T)
    assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == (WALL, later, 4)
    # Taking a released lease counts as a transition (holder "" -> me).
    back = next_record(Action.ACQUIRE, rec("", transitions=4), "me", later, T)
    assert back.transitions == 5 and back.holder == "me"
    with pytest.raises(ValueError):
        next_record(Action.WAIT, None, "me", WALL, T)


def test_released_record_frees_the_lease_for_immediate_takeover() -> None:
    released = released_record(rec("me", transitions=2, rv="5"), WALL)
    assert released.holder == "" and released.resource_version == "5"
    assert decide(observe(None, released, 1.0), 1.0, "other") is Action.ACQUIRE


def test_leader_steps_down_at_the_renew_deadline_before_anyone_can_take_over() -> None:
    sent = 100.0
    assert still_leading(sent, 109.99, T)
    assert not still_leading(sent, 110.0, T)
    assert not still_leading(None, 0.0, T)
    # A candidate that saw the same renewal (at or after it was sent) waits until >= 115.
    seen = observe(None, rec("leader"), sent)
    assert decide(seen, 110.0, "candidate") is Action.WAIT


def test_timing_must_be_ordered() -> None:
    with pytest.raises(ValueError):
        Timing(10, 10, 2)
    with pytest.raises(ValueError):
        Timing(15, 10, 10)
    with pytest.raises(ValueError):
        LeaderSettings(retry_period_seconds=0).timing  # noqa: B018


def test_lease_body_round_trip() -> None:
    record = rec("pod-a_1234abcd", renew_s=5, rv="42", transitions=2)
    body = to_body("ns", "switchman", record)
    assert body["spec"]["renewTime"] == "2026-11-23T09:00:05.123456Z"
    assert body["metadata"] == {"name": "switchman", "namespace": "ns", "resourceVersion": "42"}
    assert from_body(body) == record
    free = to_body("ns", "switchman", released_record(record, WALL))
    assert "holderIdentity" not in free["spec"]
    assert from_body(free).holder == ""


def test_settings_from_env() -> None:
    s = LeaderSettings.from_env(
        {
            "SWITCHMAN_LEADER_ELECTION": "true",
            "SWITCHMAN_LEADER_ELECTION_LEASE": "sm",
            "POD_NAMESPACE": "switchman-system",
            "POD_NAME": "switchman-7d9-abc",
            "SWITCHMAN_LEASE_DURATION_SECONDS": "6",
            "SWITCHMAN_RENEW_DEADLINE_SECONDS": "4",
            "SWITCHMAN_RETRY_PERIOD_SECONDS": "1",
        }
    )
    assert s.enabled and (s.lease_namespace, s.lease_name) == ("switchman-system", "sm")
    assert (
        s.identity.startswith("switchman-7d9-abc_")
        and len(s.identity) == len("switchman-7d9-abc_") + 8
    )
    assert s.timing == Timing(6, 4, 1)
    again = LeaderSettings.from_env({"POD_NAME": "switchman-7d9-abc"})
    assert not again.enabled and again.identity != s.identity  # a restart is a new holder
    assert LeaderSettings.from_env({"SWITCHMAN_LEADER_ELECTION": "false"}).timing == Timing()
