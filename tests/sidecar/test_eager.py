"""eager.py: a coroutine started in a callback and finished by its owner task behaves
as if the task had run it from the start (results, errors, cancellation, deadlines)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from switchman_sidecar import eager
from switchman_sidecar.deadlines import DeadlineWatch


class _Owner:
    """A worker task like the server connection's: awaits what it is handed."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.results: list[Any] = []
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            rest = await self.inbox.get()
            if rest is None:
                return
            try:
                self.results.append(("ok", await rest))
            except Exception as exc:
                self.results.append(("error", type(exc).__name__, str(exc)))


def _in_callback(fn: Any, *args: Any) -> asyncio.Future[Any]:
    """Runs ``fn`` from a plain loop callback (no task current), as data_received runs."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def call() -> None:
        try:
            done.set_result(fn(*args))
        except BaseException as exc:
            done.set_exception(exc)

    loop.call_soon(call)
    return done


async def test_runs_until_the_first_wait_inside_the_callback() -> None:
    owner = _Owner()
    steps: list[str] = []
    gate = asyncio.get_running_loop().create_future()

    async def handler() -> str:
        steps.append(f"start, current task {asyncio.current_task()}")
        await gate
        steps.append("after the gate")
        return "answer"

    rest = await _in_callback(eager.start, handler(), owner.task)
    # It ran in the callback (no task current) and stopped at its first wait.
    assert steps == ["start, current task None"]
    assert rest is not None
    owner.inbox.put_nowait(rest)
    await asyncio.sleep(0)
    gate.set_result(None)
    owner.inbox.put_nowait(None)
    await owner.task
    assert steps[1:] == ["after the gate"] and owner.results == [("ok", "answer")]


async def test_a_coroutine_that_never_waits_finishes_in_start() -> None:
    owner = _Owner()

    async def quick() -> str:
        return "done"

    async def broken() -> str:
        raise ValueError("bad request")

    assert await _in_callback(eager.start, quick(), owner.task) is None
    with pytest.raises(ValueError, match="bad request"):
        await _in_callback(eager.start, broken(), owner.task)
    owner.inbox.put_nowait(None)
    await owner.task


async def test_resolve_runs_the_coroutine_on_before_its_task_wakes() -> None:
    """The upstream's answer: the coroutine goes on inside the resolving callback; the
    task, woken later, finds it further on (here: finished) and returns its value."""
    owner = _Owner()
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[None] = loop.create_future()
    second: asyncio.Future[None] = loop.create_future()
    trail: list[str] = []
    waiting_on: list[eager.Resumed | None] = []

    async def handler() -> str:
        waiting_on.append(eager.running())
        await answer
        trail.append("answered in the callback")
        await second
        trail.append("second")
        return "whole"

    rest = await _in_callback(eager.start, handler(), owner.task)
    assert rest is not None and waiting_on == [rest]
    owner.inbox.put_nowait(rest)
    await asyncio.sleep(0)  # the owner awaits it now

    def upstream_answers() -> None:
        eager.resolve(answer, rest)
        trail.append("callback returns")

    await _in_callback(upstream_answers)
    assert trail == ["answered in the callback", "callback returns"]
    # Resolving a future the coroutine does not wait on only sets it.
    other: asyncio.Future[None] = loop.create_future()
    eager.resolve(other, rest)
    assert other.done() and trail[-1] == "callback returns"
    await _in_callback(eager.resolve, second, rest)
    assert trail[-1] == "second"
    owner.inbox.put_nowait(None)
    await owner.task
    assert owner.results == [("ok", "whole")]


async def test_errors_reach_the_coroutine_where_it_waits() -> None:
    owner = _Owner()
    loop = asyncio.get_running_loop()
    first: asyncio.Future[None] = loop.create_future()
    failing: asyncio.Future[None] = loop.create_future()

    async def handler() -> str:
        await first
        try:
            await failing
        except ConnectionError as exc:
            return f"handled {exc}"
        return "unreachable"

    rest = await _in_callback(eager.start, handler(), owner.task)
    assert rest is not None
    owner.inbox.put_nowait(rest)
    await _in_callback(eager.resolve, first, rest)
    failing.set_exception(ConnectionError("reset"))
    owner.inbox.put_nowait(None)
    await owner.task
    assert owner.results == [("ok", "handled reset")]


async def test_cancelling_the_owner_cancels_the_coroutine_where_it_waits_now() -> None:
    owner = _Owner()
    loop = asyncio.get_running_loop()
    first: asyncio.Future[None] = loop.create_future()
    second: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []

    async def handler() -> None:
        await first
        try:
            await second
        except asyncio.CancelledError:
            seen.append("cancelled at the second wait")
            raise

    rest = await _in_callback(eager.start, handler(), owner.task)
    assert rest is not None
    owner.inbox.put_nowait(rest)
    await asyncio.sleep(0)
    # Resolved and run on in a callback; the owner is cancelled before its wake-up.
    eager.resolve(first, rest)
    owner.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owner.task
    assert seen == ["cancelled at the second wait"]


async def test_a_deadline_entered_eagerly_belongs_to_the_owner() -> None:
    """deadlines.py binds an attempt's timeout to the owner task: it fires while the
    owner waits and the coroutine sees TimeoutError, as with asyncio.timeout."""
    owner = _Owner()
    watch = DeadlineWatch()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handler() -> str:
        scope = watch.timeout(0.05)
        assert scope.enter()  # no task is current: the owner is used
        try:
            await never
        except BaseException as exc:
            scope.exit(type(exc), exc)
            raise
        scope.exit(None, None)
        return "no timeout"

    rest = await _in_callback(eager.start, handler(), owner.task)
    assert rest is not None
    owner.inbox.put_nowait(rest)
    owner.inbox.put_nowait(None)
    await asyncio.wait_for(owner.task, 5)
    assert owner.results == [("error", "TimeoutError", "")]
    assert watch.pending == 0 and owner.task.cancelling() == 0


async def test_a_deadline_before_the_owner_took_over_reaches_the_coroutine() -> None:
    """The owner is cancelled while it still waits for its next job (the server's
    worker between requests): ``throw`` hands the cancellation to the coroutine."""
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    handed: asyncio.Future[eager.Resumed] = loop.create_future()
    seen: list[str] = []

    async def worker() -> str:
        wake: asyncio.Future[None] = loop.create_future()
        try:
            await wake
        except asyncio.CancelledError as exc:
            rest = handed.result()
            assert rest.throw(exc)
            try:
                return str(await rest)
            except asyncio.CancelledError:
                return "cancelled"
        return "woken"

    async def handler() -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("handler saw the cancellation")
            raise

    task = loop.create_task(worker())
    await asyncio.sleep(0)
    rest = await _in_callback(eager.start, handler(), task)
    assert rest is not None
    handed.set_result(rest)
    task.cancel()
    assert await task == "cancelled"
    assert seen == ["handler saw the cancellation"]


async def test_a_finished_or_closed_rest_leaves_a_cancellation_to_its_caller() -> None:
    """``throw`` declines once the coroutine is done (the worker re-raises), and
    ``close`` (the worker ended before awaiting it) runs the coroutine's cleanup."""
    owner = _Owner()
    loop = asyncio.get_running_loop()
    trail: list[str] = []

    async def handler(answer: asyncio.Future[None]) -> None:
        try:
            await answer
        finally:
            trail.append("cleanup")

    answer: asyncio.Future[None] = loop.create_future()
    finished = await _in_callback(eager.start, handler(answer), owner.task)
    assert finished is not None
    eager.resolve(answer, finished)
    assert trail == ["cleanup"]
    assert not finished.throw(asyncio.CancelledError())

    pending = await _in_callback(eager.start, handler(loop.create_future()), owner.task)
    assert pending is not None and trail == ["cleanup"]
    pending.close()
    assert trail == ["cleanup", "cleanup"]
    assert not pending.throw(asyncio.CancelledError())
    owner.inbox.put_nowait(None)
    await owner.task


@pytest.mark.parametrize("split", [False, True], ids=["one-read", "head-and-body-apart"])
async def test_the_server_answers_the_next_request_when_the_answer_beat_the_worker(
    split: bool,
) -> None:
    """A connection's handler runs inside ``data_received`` up to its wait, whether the
    compiled parser took the request in one read or httptools took it in two (as the
    OpenAI SDK writes it); when the answer comes (and is written) before the worker
    task took the rest over, the connection is not left busy: the next requests are
    answered too (a regression: the worker marked it busy again and the third request
    was held for ever)."""
    from switchman_sidecar.http import server as http_server
    from switchman_sidecar.http.server import Request, ResponseWriter, ServerLimits

    from .test_request_parse import _Transport

    loop = asyncio.get_running_loop()
    trail: list[str] = []

    async def handler(req: Request, w: ResponseWriter) -> None:
        answer: asyncio.Future[None] = loop.create_future()
        trail.append(f"sent upstream {req.body.decode()}")
        # The provider answers in the very next callback, ahead of the worker's wake-up.
        loop.call_soon(eager.resolve, answer, eager.running())
        await answer
        w.send(200, [], req.body)

    conn = http_server._HttpConnection(handler, ServerLimits(), set())
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    for i in range(4):
        body = b"r%d" % i
        head = b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: %d\r\n\r\n" % len(body)
        if split:
            conn.data_received(head)
            assert len(trail) == i  # not before the body
            conn.data_received(body)
        else:
            conn.data_received(head + body)
        assert trail[-1] == f"sent upstream r{i}"  # in the callback, not a later turn
        for _ in range(3):
            await asyncio.sleep(0)
        assert transport.out[-1].endswith(body), transport.out
    assert len(transport.out) == 4 and not transport.closed
    conn.connection_lost(None)
    await asyncio.sleep(0)


async def test_a_request_rejected_behind_a_held_one_does_not_overtake_it() -> None:
    """Two requests in one read, the second too large: the first (held until the read
    is parsed) is dispatched before the rejection, which then only closes the
    connection, as before requests were held; no 413 goes out ahead of it."""
    from switchman_sidecar.http import server as http_server
    from switchman_sidecar.http.server import Request, ResponseWriter, ServerLimits

    from .test_request_parse import _Transport

    seen: list[bytes] = []

    async def handler(req: Request, w: ResponseWriter) -> None:
        seen.append(req.body)
        w.send(200, [], b"ok")

    conn = http_server._HttpConnection(handler, ServerLimits(max_body_bytes=16), set())
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(
        b"POST /a HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nr1"
        b"POST /b HTTP/1.1\r\nhost: a\r\ncontent-length: 999\r\n\r\n"
    )
    for _ in range(3):
        await asyncio.sleep(0)
    assert not any(b" 413 " in out for out in transport.out), transport.out
    assert transport.closed
    conn.connection_lost(None)
    await asyncio.sleep(0)
