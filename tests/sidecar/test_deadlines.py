"""DeadlineWatch: asyncio.timeout's behaviour with one loop timer for all attempts."""

from __future__ import annotations

import asyncio

import pytest

from switchman_sidecar.deadlines import DeadlineWatch


async def test_times_out_like_asyncio_timeout() -> None:
    watch = DeadlineWatch()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(TimeoutError):
        async with watch.timeout(0.05):
            await asyncio.sleep(5)
    assert loop.time() - t0 >= 0.04  # never early; late only by scheduling noise
    assert watch.pending == 0
    # The task is usable afterwards: no cancellation left pending.
    await asyncio.sleep(0.01)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_finishing_in_time_leaves_nothing_behind() -> None:
    watch = DeadlineWatch()
    for _ in range(100):
        async with watch.timeout(0.2):
            await asyncio.sleep(0)
    assert watch.pending == 0 and not watch._buckets
    await asyncio.sleep(0.3)  # the one timer fires, finds nothing, stops
    assert watch._timer is None


async def test_many_tasks_each_get_their_own_deadline() -> None:
    watch = DeadlineWatch()

    async def attempt(limit: float, work: float) -> str:
        try:
            async with watch.timeout(limit):
                await asyncio.sleep(work)
            return "done"
        except TimeoutError:
            return "timeout"

    results = await asyncio.gather(
        attempt(0.3, 0.01),
        attempt(0.05, 1.0),
        attempt(0.3, 1.0),
        attempt(0.05, 0.01),
        attempt(1.0, 0.1),
    )
    assert list(results) == ["done", "timeout", "timeout", "done", "done"]
    assert watch.pending == 0


async def test_an_outside_cancel_stays_a_cancel() -> None:
    watch = DeadlineWatch()

    async def attempt() -> None:
        async with watch.timeout(5):
            await asyncio.sleep(5)

    task = asyncio.create_task(attempt())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert watch.pending == 0


async def test_a_shorter_deadline_after_a_longer_one_rearms_the_timer() -> None:
    watch = DeadlineWatch()

    async def long() -> str:
        async with watch.timeout(10):
            await asyncio.sleep(0.3)
        return "long done"

    task = asyncio.create_task(long())
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(TimeoutError):
        async with watch.timeout(0.05):
            await asyncio.sleep(5)
    # Not re-armed, the shorter deadline would wait for the 10 s timer and the
    # 5 s sleep would finish first: a generous bound that is still decisive.
    assert loop.time() - t0 < 4.0
    assert await task == "long done"


async def test_enter_and_exit_without_async_with_behave_the_same() -> None:
    """The failover loop enters and leaves scopes directly (no coroutine objects)."""
    watch = DeadlineWatch()
    scope = watch.timeout(0.05)
    assert scope.enter()
    with pytest.raises(TimeoutError):
        try:
            await asyncio.sleep(5)
        except BaseException as exc:
            scope.exit(type(exc), exc)
            raise
    assert watch.pending == 0
    await asyncio.sleep(0.01)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    quick = watch.timeout(0.5)
    assert quick.enter()
    await asyncio.sleep(0)
    quick.exit(None, None)
    assert watch.pending == 0 and not watch._buckets
