"""A lean HTTP/1.1 server: one protocol object per connection (like uvicorn).

Why not an ASGI stack: the sidecar sits on every request path of the pod, and
each layer of a framework costs tens of microseconds. httptools parses, the
protocol owns flow control, and a handler coroutine gets a parsed ``Request``
and a ``ResponseWriter``. Requests on one connection are served in order (the
connection stops reading while a request is in flight, which also bounds the
memory a pipelining client can make us hold).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

import httptools
import orjson

from switchman_sidecar import eager
from switchman_sidecar.compiled import native

_Parse = Callable[[bytes, int], tuple[str, str, str, dict[str, str], bytes, bool] | None]
#: The compiled request parser (native/src/request.rs); httptools alone without it.
_parse_request: _Parse | None = native.parse_request if native is not None else None

__all__ = ["Handler", "HttpServer", "Request", "ResponseWriter", "ServerLimits", "serve"]

log = logging.getLogger("switchman.http")

_REASONS = {
    200: b"OK",
    201: b"Created",
    204: b"No Content",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    415: b"Unsupported Media Type",
    422: b"Unprocessable Entity",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    529: b"Overloaded",
}


_NAMES: dict[bytes, str] = {}
"""Header names as received → lower-cased str. Clients send the same dozen names
on every request; a lookup is cheaper than decoding and lower-casing each."""
_MAX_NAMES = 512


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Bounds that keep one bad client from hurting the pod."""

    max_body_bytes: int = 8 * 1024 * 1024
    """Larger bodies get 413: prompts beyond this are not plausible chat traffic."""
    header_timeout_s: float = 10.0
    """A request must be complete (headers and body) this long after its first byte."""
    keepalive_timeout_s: float = 75.0
    """Idle keep-alive connections are closed after this (nginx's default)."""
    write_high_water: int = 256 * 1024
    """Bytes buffered towards a slow client before the writer waits."""


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Names lower-cased; a repeated header keeps its last value."""
    body: bytes
    client: str = ""
    prior: Any = None
    """What the native lane found when it tried this request first (lane.py)."""


class ResponseWriter:
    """Writes one response: either ``send`` (whole body) or ``start``/``write``/``end``."""

    __slots__ = ("_chunked", "_conn", "_done", "_keep_alive", "started", "status")

    def __init__(self, conn: _HttpConnection, keep_alive: bool) -> None:
        self._conn = conn
        self._keep_alive = keep_alive
        self._chunked = False
        self._done = False
        self.started = False
        self.status = 0

    @property
    def disconnected(self) -> bool:
        return self._conn.closed

    async def wait_disconnected(self) -> None:
        await self._conn.lost.wait()

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Called if the client goes away before this response is done."""
        self._conn.lost_callbacks.append(callback)

    def _head(
        self, status: int, headers: list[tuple[str, str]], extra: bytes, lines: bytes = b""
    ) -> bytes:
        if headers:
            lines = (
                "".join([f"{name}: {value}\r\n" for name, value in headers]).encode("latin-1")
                + lines
            )
        return b"HTTP/1.1 %d %s\r\n%s%s%s\r\n" % (
            status,
            _REASONS.get(status, b"Status"),
            lines,
            extra,
            b"" if self._keep_alive else b"connection: close\r\n",
        )

    def send(
        self, status: int, headers: list[tuple[str, str]], body: bytes, lines: bytes = b""
    ) -> None:
        """``lines``: more header lines, already encoded (``name: value\\r\\n`` each)."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        head = self._head(status, headers, b"content-length: %d\r\n" % len(body), lines)
        self._conn.write(head + body)
        self._finish()

    def send_json(self, status: int, obj: Any, headers: list[tuple[str, str]] = []) -> None:  # noqa: B006
        self.send(status, [("content-type", "application/json"), *headers], orjson.dumps(obj))

    def start(self, status: int, headers: list[tuple[str, str]], lines: bytes = b"") -> None:
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        self._chunked = True
        self._conn.write(self._head(status, headers, b"transfer-encoding: chunked\r\n", lines))

    async def write(self, data: bytes) -> None:
        """Sends one chunk; waits while the client is slow. No-op once disconnected."""
        if not data or self._conn.closed:
            return
        self._conn.write(b"%x\r\n%s\r\n" % (len(data), data))
        if self._conn.paused:
            await self._conn.drain()

    def end(self) -> None:
        if self._chunked and not self._done:
            self._conn.write(b"0\r\n\r\n")
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._conn.response_done(self._keep_alive)


Handler = Callable[[Request, ResponseWriter], Coroutine[Any, Any, None]]


class _HttpConnection(asyncio.Protocol):
    """One client connection: parse, dispatch to the handler, keep alive."""

    def __init__(
        self,
        handler: Handler,
        limits: ServerLimits,
        conns: set[_HttpConnection],
        initial: bytes = b"",
        prior: Any = None,
    ):
        self._initial = initial
        """Bytes read before this object had the connection (a native-lane handoff)."""
        self._prior = prior
        """Given to the first request: the lane's failed attempt at it."""
        self._handler = handler
        self._limits = limits
        self._conns = conns
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_len = 0
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline: float | None = None
        self._timeout_status = 0
        self._worker: asyncio.Task[None] | None = None
        self._queue: collections.deque[tuple[Request, ResponseWriter, eager.Resumed | None]] = (
            collections.deque()
        )
        """Requests for the worker: to run, or (eagerly started) to finish."""
        self._driving = False
        """A handler runs eagerly now (inside this connection's callback)."""
        self._wake: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._client = ""
        self.closed = False
        self.paused = False
        self.lost = asyncio.Event()
        self.lost_callbacks: list[Callable[[], None]] = []
        self._lingering = False
        self._held: list[bytes] = []
        """Bytes that arrived while a request was in flight (pipelining)."""
        self._reading_paused = False
        self._eof = False
        self._in_message = False
        """httptools has begun a message it has not completed (the fast parse waits)."""
        self._parse = _parse_request
        self._feeding = False
        """httptools is parsing a read now (its callbacks run)."""
        self._completed: tuple[Request, bool] | None = None
        """A request httptools completed in this read, dispatched once the read is
        parsed: eagerly, unless more requests came in the same read."""

    # transport callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=self._limits.write_high_water)
        peer = transport.get_extra_info("peername")
        self._client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        self._conns.add(self)
        self._arm(self._limits.keepalive_timeout_s)
        if self._initial:
            initial, self._initial = self._initial, b""
            self.data_received(initial)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost.set()
        self._conns.discard(self)
        self._stop_timer()
        callbacks, self.lost_callbacks = self.lost_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("disconnect callback failed")
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)  # the idle worker ends

    def eof_received(self) -> bool:
        if self._busy or self._queue or self._held:
            self._eof = True  # a half-close: answer what was asked, then close
            return True
        return False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # rejected request: its rest is read and dropped until we close
        if self._busy:
            # Pipelined: the next request waits, unparsed, until this response is
            # done, and reading stops meanwhile (bounded memory). Reading is not
            # paused per request: on uvloop that is two epoll changes per request.
            self._held.append(data)
            if not self._reading_paused and self._transport is not None:
                self._reading_paused = True
                self._transport.pause_reading()
            return
        if not self._in_message and self._parse is not None:
            # One whole plain request in this read (the usual case): parsed in one
            # compiled call; anything else (partial, pipelined, chunked, unusual
            # headers) goes to httptools, which parses or rejects it as before.
            parsed = self._parse(data, self._limits.max_body_bytes)
            if parsed is not None:
                self._deadline = None  # what on_message_begin + on_message_complete leave
                method, path, query, headers, body, keep_alive = parsed
                request = Request(method, path, query, headers, body, self._client)
                self._dispatch(request, keep_alive, eager_ok=True)
                return
        self._feeding = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, "protocol upgrades are not supported")
        except httptools.HttpParserError:
            self._reject(400, "malformed HTTP request")
        finally:
            self._feeding = False
        if self._completed is not None:
            # A client that writes the head and the body apart (the OpenAI SDK's
            # httpx does) ends here; run it as the compiled parser's requests are.
            self._dispatch_completed(eager_ok=True)

    def _dispatch_completed(self, eager_ok: bool) -> None:
        completed, self._completed = self._completed, None
        if completed is not None:
            self._dispatch(*completed, eager_ok=eager_ok)

    # parser callbacks ----------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_len = 0
        self._arm(self._limits.header_timeout_s, status=408)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = _NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_NAMES) < _MAX_NAMES:
                _NAMES[name] = key
        self._headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._limits.max_body_bytes:
            self._reject(413, "request body is larger than the sidecar accepts")

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > self._limits.max_body_bytes:
            self._reject(413, "request body is larger than the sidecar accepts")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self.closed or self._transport is None:
            return
        self._disarm()
        url = self._url.decode("latin-1")
        path, _, query = url.partition("?")
        request = Request(
            method=self._parser.get_method().decode("ascii"),
            path=path,
            query=query,
            headers=self._headers,
            body=b"".join(self._body),
            client=self._client,
        )
        keep_alive = self._parser.should_keep_alive()
        if self._feeding and self._completed is None and not self._queue and not self._busy:
            self._completed = (request, keep_alive)  # dispatched after the parse
            return
        self._dispatch_completed(eager_ok=False)  # in order: a request before it first
        self._dispatch(request, keep_alive)

    def _dispatch(self, request: Request, keep_alive: bool, eager_ok: bool = False) -> None:
        """A whole request: run eagerly when the worker is idle (``eager_ok``: not from
        inside httptools' callbacks), else queued for the worker (started or woken)."""
        if self.closed or self._transport is None:
            return
        self._busy = True
        if self._prior is not None:
            request.prior, self._prior = self._prior, None
        writer = ResponseWriter(self, keep_alive=keep_alive)
        worker = self._worker
        idle = worker is None or (self._wake is not None and not self._wake.done())
        if eager_ok and idle and not self._queue and not self._held and not self._driving:
            if worker is None:
                worker = self._worker = self._loop.create_task(self._serve())
            # Until its first wait (the upstream write is done by then, as a rule)
            # the handler runs here; the worker finishes it (eager.py).
            self._driving = True
            try:
                rest = eager.start(self._handler(request, writer), worker)
            except Exception:
                rest = None
                self._failed(request, writer)
            finally:
                self._driving = False
            if rest is None:
                self._settle(writer)
                return
            # First: a request that arrived (pipelined) while it ran waits behind it.
            self._queue.appendleft((request, writer, rest))
        else:
            self._queue.append((request, writer, None))
        if self._worker is None:
            self._worker = self._loop.create_task(self._serve())
        elif self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    # helpers -------------------------------------------------------------
    async def _serve(self) -> None:
        """One task per connection, not per request (a task costs ~5 µs to make and
        track); requests that arrived pipelined in one read are answered in order."""
        queue = self._queue
        try:
            while True:
                # A handler started eagerly is finished even if the client went away
                # meanwhile (as one the worker started would be).
                while queue and (not self.closed or queue[0][2] is not None):
                    request, writer, rest = queue.popleft()
                    if rest is None:
                        # (A started one may have answered already: not busy again.)
                        self._busy = True
                    # _run inlined: one coroutine fewer per request.
                    try:
                        await (self._handler(request, writer) if rest is None else rest)
                    except Exception:
                        self._failed(request, writer)
                    finally:
                        self._settle(writer)
                if self.closed:
                    return
                self._wake = self._loop.create_future()
                try:
                    await self._wake
                except asyncio.CancelledError as exc:
                    # An eagerly started handler's deadline fired before this task
                    # took it over: the handler gets the cancellation where it waits.
                    rest = queue[0][2] if queue else None
                    if rest is None or not rest.throw(exc):
                        raise
                self._wake = None
        finally:
            self._worker = None
            for _, _, rest in queue:
                if rest is not None:
                    rest.close()
            queue.clear()

    def _settle(self, writer: ResponseWriter) -> None:
        """After the handler: a response it left unfinished is ended or cut."""
        if not writer._done:
            if writer.started and writer._chunked:
                writer.end()
            else:
                self.close()

    def _failed(self, request: Request, writer: ResponseWriter) -> None:
        log.exception("handler failed", extra={"path": request.path})
        if not writer.started:
            writer.send_json(500, _error_body("internal error in the sidecar", "server_error"))
        else:
            self.close()

    def response_done(self, keep_alive: bool) -> None:
        self._busy = False
        self.lost_callbacks.clear()
        if not keep_alive:
            self.close()
            return
        if self._transport is None or self.closed or self._queue:
            return  # with pipelined requests still queued, held data stays held
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            self.data_received(data)  # may queue the next request (busy again)
            if self._busy or self._queue or self.closed:
                return
        if self._eof:
            self.close()
            return
        if self._deadline is None:  # not inside a request's head already (its own timer)
            self._arm(self._limits.keepalive_timeout_s)
        if self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(data)

    async def drain(self) -> None:
        if not self.paused or self.closed:
            return
        self._drain_waiter = self._loop.create_future()
        await self._drain_waiter

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.close()

    def _reject(self, status: int, message: str) -> None:
        self._dispatch_completed(eager_ok=False)  # one held from this read goes first
        if self._busy or self.closed:
            self.close()
            return
        self._busy = True
        body = orjson.dumps(_error_body(message, "invalid_request_error"))
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
            status,
            _REASONS.get(status, b"Error"),
            len(body),
        )
        self.write(head + b"connection: close\r\n\r\n" + body)
        # Lingering close (as nginx does): keep reading and dropping what the client
        # still sends for a moment, so it sees the error instead of a reset.
        self._lingering = True
        if self._transport is not None:
            self._transport.resume_reading()
        self._stop_timer()
        self._timer = self._loop.call_later(1.0, self.close)

    # Timers are lazy: every request re-arms the connection's deadline (header
    # timeout at its start, keep-alive at its end), and creating and cancelling
    # a timer handle each time was measurable. One handle stays armed; when it
    # fires before the current deadline it re-arms itself for the rest.
    def _arm(self, seconds: float, status: int = 0) -> None:
        deadline = self._loop.time() + seconds
        self._deadline = deadline
        self._timeout_status = status
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _disarm(self) -> None:
        self._deadline = None

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        self._deadline = None
        self._on_timeout(self._timeout_status)

    def _on_timeout(self, status: int) -> None:
        if status and not self._busy:
            self._reject(status, "request was not received in time")
        elif not self._busy:
            self.close()


def _error_body(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


@dataclass(slots=True)
class HttpServer:
    """A started server; ``port`` is the bound port (useful with port 0)."""

    server: asyncio.Server | None
    """None while the native lane accepts on this port (``lane.py``)."""
    host: str
    port: int
    connections: set[_HttpConnection] = field(default_factory=set)
    handler: Handler | None = None
    limits: ServerLimits = field(default_factory=ServerLimits)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def adopt(self, sock: socket.socket, data: bytes, prior: Any = None) -> None:
        """Serves a connection accepted elsewhere (the native lane), whose first
        ``data`` was read already: parsed before anything read from now on.
        ``prior`` goes with the first request (``Request.prior``)."""
        assert self.handler is not None
        handler, limits, conns = self.handler, self.limits, self.connections
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(
            lambda: _HttpConnection(handler, limits, conns, data, prior), sock
        )

    async def listen(self, sock: socket.socket) -> None:
        """Accepts on ``sock`` from now on (the native lane stopped working)."""
        assert self.handler is not None
        handler, limits, conns = self.handler, self.limits, self.connections
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _HttpConnection(handler, limits, conns), sock=sock, backlog=1024
        )

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.close()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5.0)


async def serve(
    handler: Handler, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits | None = None
) -> HttpServer:
    limits = limits or ServerLimits()
    conns: set[_HttpConnection] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _HttpConnection(handler, limits, conns), host, port, backlog=1024
    )
    # uvloop's ``sockets`` is a list where typeshed says tuple: read it untyped, as
    # code compiled with mypyc (``_compiled.py``) checks a declared type.
    bound = cast(Any, server).sockets[0].getsockname()[1]
    return HttpServer(
        server=server,
        host=host,
        port=int(bound),
        connections=conns,
        handler=handler,
        limits=limits,
    )
