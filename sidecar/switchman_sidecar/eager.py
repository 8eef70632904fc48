"""Running a request's coroutine from the socket callbacks, not a later loop turn.

A request that arrives is parsed in the connection's ``data_received``; handing
it to the connection's worker task costs a future, a wake-up and a turn of the
event loop before the handler runs, and the provider's answer costs another
(its future's callbacks run a turn after it resolves). On a socket each turn
was measured at tens of microseconds of added latency (docs/sidecar.md,
"Eighth pass"). So:

* ``start`` runs the handler coroutine right away, inside the callback, until
  it first waits (for the provider, as a rule, after the upstream write); the
  rest of it, a ``Resumed``, is then awaited by the connection's worker task,
  exactly as if the task had run it from the start (Python 3.12's eager task
  factory does this for whole tasks; 3.11 has none).
* ``resolve`` completes a future a ``Resumed`` coroutine waits on and runs the
  coroutine on from there at once, inside the callback that resolved it (the
  upstream connection's, with a whole answer); the task, when its wake-up
  comes, finds the coroutine already further on and waits where it waits now.

While a coroutine runs this way no task is current (or another one is), so
``current_task`` answers with the task that owns it: ``deadlines`` binds
per-attempt timeouts to that task. A timeout fires in a later loop turn, when
the owner is waiting, and its cancellation reaches the coroutine where it then
waits, as for any task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["Resumed", "current_task", "resolve", "running", "start"]

_running: Resumed | None = None
"""The ``Resumed`` whose coroutine runs now, if any (eagerly or relayed by its task)."""


def current_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    """The owner of the coroutine running now, else ``asyncio.current_task(loop)``
    (a connection's callback may run inside some other task's step)."""
    return _running._owner if _running is not None else asyncio.current_task(loop)


def running() -> Resumed | None:
    """What to pass to ``resolve`` for a future the running coroutine will wait on."""
    return _running


class Resumed:
    """A coroutine run in steps by ``start``/``resolve`` and, in between, by its owner
    task awaiting this object (which relays what the coroutine yields to the task,
    and the task's cancellations and the futures' errors back into it)."""

    __slots__ = ("_coro", "_error", "_finished", "_owner", "_pending", "_value")

    def __init__(self, coro: Coroutine[Any, Any, Any], owner: asyncio.Task[Any]) -> None:
        self._coro = coro
        self._owner = owner
        self._pending: Any = None
        """What the coroutine waits on now (as it yielded it)."""
        self._finished = False
        self._value: Any = None
        self._error: BaseException | None = None

    def _step(self, exc: BaseException | None = None) -> None:
        global _running
        outer, _running = _running, self
        try:
            self._pending = self._coro.send(None) if exc is None else self._coro.throw(exc)
        except StopIteration as stop:
            self._finished = True
            self._value = stop.value
        except BaseException as error:  # the owner's await raises it
            self._finished = True
            self._error = error
        finally:
            _running = outer

    def throw(self, exc: BaseException) -> bool:
        """Raises ``exc`` in the coroutine where it waits (its owner was cancelled
        before awaiting this). False: it has finished, ``exc`` is the caller's."""
        if self._finished:
            return False
        self._step(exc)
        return True

    def close(self) -> None:
        """Never awaited (the connection's worker ended first): close the coroutine."""
        if not self._finished:
            self._finished = True
            self._coro.close()

    def _outcome(self) -> Any:
        """The finished coroutine's return value, or its exception raised."""
        error, self._error = self._error, None
        if error is not None:
            raise error
        return self._value

    def __await__(self) -> Generator[Any, None, Any]:
        while not self._finished:
            current = self._pending
            try:
                yield current
            except BaseException as exc:
                if self._finished:
                    raise
                self._step(exc)  # where the coroutine waits now
                continue
            if self._pending is current and not self._finished:
                self._step()
            # else: ``resolve`` ran it on meanwhile; wait where it waits now
        return self._outcome()


def start(coro: Coroutine[Any, Any, Any], owner: asyncio.Task[Any]) -> Resumed | None:
    """Runs ``coro`` until it first waits: None if it finished (its errors are raised
    here), else the rest for ``owner`` to await."""
    rest = Resumed(coro, owner)
    rest._step()
    if rest._finished:
        rest._outcome()
        return None
    return rest


def resolve(future: asyncio.Future[None], rest: Resumed | None) -> None:
    """``future.set_result(None)``; if ``rest`` waits on it, runs it on now."""
    future.set_result(None)
    if rest is not None and rest._pending is future and not rest._finished:
        rest._step()
