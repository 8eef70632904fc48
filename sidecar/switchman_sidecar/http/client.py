"""A pooled HTTP/1.1 client for upstream providers, built on httptools.

Why not httpx or aiohttp: both were measured as the dominant cost of a proxied
request (docs/sidecar.md has the figures); what the sidecar needs is narrow —
POST a JSON body, read a JSON body or an event stream, reuse keep-alive
connections — and a protocol object per connection does that with one parser
callback per chunk and no per-request objects beyond the response.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

from switchman_sidecar import eager
from switchman_sidecar.compiled import native

_Parse = Callable[[bytes, int], tuple[int, list[tuple[bytes, bytes]], bytes, bool] | None]
#: The compiled answer parser (native/src/request.rs); httptools alone without it.
_parse_response: _Parse | None = native.parse_response if native is not None else None

__all__ = ["Origin", "UpstreamClient", "UpstreamConnectError", "UpstreamError", "UpstreamResponse"]


class UpstreamError(Exception):
    """The connection failed or broke while talking to the provider."""


class UpstreamConnectError(UpstreamError):
    """Could not connect at all: always safe to retry elsewhere."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    base_path: str
    key: str = ""
    """``scheme://host:port``: what pools are keyed by (a str hashes once; this
    dataclass would hash its four fields in Python on every lookup)."""

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint {url!r} must be an http(s) URL with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = f"{parts.scheme}://{parts.hostname}:{port}"
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), key)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


class UpstreamResponse:
    """Status and headers are known; the body is read with ``read`` or ``chunks``."""

    __slots__ = ("_conn", "_headers", "_raw_headers", "idle_s", "status")

    def __init__(self, conn: _Conn, status: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self._conn = conn
        self.status = status
        self._raw_headers = raw_headers
        self._headers: dict[str, str] | None = None
        self.idle_s: float | None = None
        """When set, ``chunks`` raises TimeoutError after this long without data."""

    @property
    def headers(self) -> dict[str, str]:
        """Names lower-cased. Decoded on first use: providers send a score of
        headers and the success path reads none of them."""
        if self._headers is None:
            self._headers = {
                n.decode("latin-1").lower(): v.decode("latin-1") for n, v in self._raw_headers
            }
        return self._headers

    async def read(self) -> bytes:
        conn = self._conn
        if conn.complete and not conn.reading_paused:
            # Common case: the whole body came with the head; no async generator.
            data = b"".join(conn.body)
            conn.body.clear()
            conn.buffered = 0
            conn.release()
            return data
        parts = [chunk async for chunk in self.chunks()]
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.body:
                data = b"".join(conn.body)
                conn.body.clear()
                conn.buffered = 0
                if conn.reading_paused and conn.transport is not None:
                    conn.reading_paused = False
                    conn.transport.resume_reading()
                yield data
                continue
            if conn.complete:
                conn.release()
                return
            if conn.error is not None:
                raise conn.error
            loop = conn.loop
            conn.waiter = loop.create_future()
            if self.idle_s is not None:
                conn.watch_idle(loop, self.idle_s)
            await conn.waiter

    def close(self) -> None:
        """Gives the connection back (if the body was read) or drops it."""
        self._conn.release()


_PAUSE_AT = 1 << 20
"""Bytes of an answer held before reading from the upstream pauses."""


class _Conn(asyncio.Protocol):
    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        """Kept: ``asyncio.get_running_loop()`` makes a getpid() system call each time."""
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.error: Exception | None = None
        self.head: asyncio.Future[None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.keep_alive = True
        self.idle = False
        self.released = True
        self.closed = False
        self.idle_deadline = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_timer_at = 0.0
        self.status = 0
        self.fresh = False
        """Nothing of the current answer read yet: it may be parsed in one call."""
        self.parse = _parse_response
        self.resumer: eager.Resumed | None = None
        """The request coroutine that will wait for this answer, if run by ``eager``."""

    def reset(self) -> None:
        self.headers = []
        self.body = []
        self.buffered = 0
        self.complete = False
        self.error = None
        self.head = self.loop.create_future()
        self.released = False
        self.fresh = True
        self.resumer = eager.running()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if not self.complete:
            self._fail(UpstreamError(f"upstream closed the connection: {exc or 'EOF'}"))

    def data_received(self, data: bytes) -> None:
        if self.fresh:
            self.fresh = False
            if self.parse is not None:
                # A whole plain answer with a content-length body in this read (the
                # usual non-streamed answer): one compiled call instead of httptools'
                # callbacks; anything else (streams, partial reads) goes to httptools.
                parsed = self.parse(data, _PAUSE_AT)
                if parsed is not None:
                    self.status, self.headers, body, self.keep_alive = parsed
                    if body:
                        self.body.append(body)
                        self.buffered = len(body)
                    self.complete = True
                    head = self.head
                    if head is not None and not head.done():
                        # The request that waits for it runs on now, in this callback,
                        # up to its answer to the client (eager.py); it may release this
                        # connection and even reuse it, so nothing here touches it after.
                        eager.resolve(head, self.resumer)
                        return
                    self._wake()
                    return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed upstream response: {exc}"))
            self.abort()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        self.status = self.parser.get_status_code()
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # A stream's idle timeout, lazily: each wait for data only moves the deadline;
    # one timer handle re-arms itself when it fires early (an asyncio.timeout per
    # chunk cost a timer handle, a context manager and task bookkeeping each).
    def watch_idle(self, loop: asyncio.AbstractEventLoop, idle_s: float) -> None:
        deadline = loop.time() + idle_s
        self.idle_deadline = deadline
        if self.idle_timer is not None:
            if self.idle_timer_at <= deadline:
                return
            self.idle_timer.cancel()
        self.idle_timer_at = deadline
        self.idle_timer = loop.call_at(deadline, self._idle_check, loop)

    def _idle_check(self, loop: asyncio.AbstractEventLoop) -> None:
        self.idle_timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # not waiting for data now; the next wait re-arms
        if loop.time() < self.idle_deadline:
            self.idle_timer_at = self.idle_deadline
            self.idle_timer = loop.call_at(self.idle_deadline, self._idle_check, loop)
            return
        waiter.set_exception(TimeoutError("no data from the upstream within the idle timeout"))

    def _stop_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        self.error = exc
        if self.head is not None and not self.head.done():
            self.head.set_exception(exc)
        self._wake()

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.resumer = None  # (a finished request's coroutine is not kept by the pool)
        self._stop_idle()
        if self.complete and self.keep_alive and not self.closed and self.error is None:
            self.pool.put(self)
        else:
            self.abort()

    def abort(self) -> None:
        self._stop_idle()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
        self.pool.forget(self)


class _Pool:
    def __init__(self, origin: Origin, ssl_ctx: ssl.SSLContext | None, max_idle: int) -> None:
        self.origin = origin
        self.ssl = ssl_ctx
        self.max_idle = max_idle
        self.idle: collections.deque[_Conn] = collections.deque()

    async def connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await loop.create_connection(
                lambda: _Conn(self),
                self.origin.host,
                self.origin.port,
                ssl=self.ssl,
                server_hostname=self.origin.host if self.ssl else None,
            )
        except OSError as exc:
            raise UpstreamConnectError(
                f"cannot connect to {self.origin.host_header}: {exc}"
            ) from exc
        return proto

    def take(self) -> _Conn | None:
        """An idle keep-alive connection, if there is one (no await on the common path)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            conn.idle = False
            if not conn.closed:
                return conn
        return None

    def put(self, conn: _Conn) -> None:
        if len(self.idle) >= self.max_idle:
            conn.abort()
            return
        # The parser is kept: llhttp parses the next response on a keep-alive
        # connection once the previous one completed (only complete responses
        # come back here).
        conn.idle = True
        self.idle.append(conn)

    def forget(self, conn: _Conn) -> None:
        if conn.idle:
            conn.idle = False
            with contextlib.suppress(ValueError):
                self.idle.remove(conn)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().abort()


class UpstreamClient:
    """Keep-alive pools per origin; one instance per sidecar process."""

    def __init__(self, max_idle_per_origin: int = 64) -> None:
        self._pools: dict[str, _Pool] = {}
        self._max_idle = max_idle_per_origin
        self._ssl: ssl.SSLContext | None = None
        self._heads: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], bytes] = {}
        """Encoded request line + headers, by what they are built from (few distinct)."""

    def _head(
        self, method: str, origin: Origin, target: str, headers: list[tuple[str, str]]
    ) -> bytes:
        key = (method, origin.key, target, tuple(headers))
        head = self._heads.get(key)
        if head is None:
            lines = "".join([f"{name}: {value}\r\n" for name, value in headers])
            text = f"{method} {target} HTTP/1.1\r\nhost: {origin.host_header}\r\n{lines}"
            if len(self._heads) >= 1024:
                self._heads.clear()
            head = self._heads[key] = text.encode("latin-1")
        return head

    def request_head(
        self, method: str, origin: Origin, target: str, headers: list[tuple[str, str]]
    ) -> bytes:
        """The request line and headers ``request`` sends (without content-length)."""
        return self._head(method, origin, target, headers)

    def _pool(self, origin: Origin) -> _Pool:
        pool = self._pools.get(origin.key)
        if pool is None:
            ctx = None
            if origin.scheme == "https":
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                ctx = self._ssl
            pool = self._pools[origin.key] = _Pool(origin, ctx, self._max_idle)
        return pool

    async def request(
        self,
        method: str,
        origin: Origin,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> UpstreamResponse:
        """Sends the request and returns once the status line and headers are in.

        A stale keep-alive connection (closed by the server between requests)
        is retried once on a fresh connection: nothing was processed upstream.
        """
        pool = self._pool(origin)
        for attempt in (0, 1):
            conn = pool.take()
            reused = conn is not None
            if conn is None:
                conn = await pool.connect()
            conn.reset()
            head = self._head(method, origin, target, headers)
            assert conn.transport is not None
            conn.transport.write(b"%scontent-length: %d\r\n\r\n%s" % (head, len(body), body))
            try:
                assert conn.head is not None
                await conn.head
            except UpstreamError:
                conn.abort()
                if reused and attempt == 0 and not conn.headers:
                    continue
                raise
            except BaseException:
                conn.abort()
                raise
            return UpstreamResponse(conn, conn.status, conn.headers)
        raise UpstreamError("unreachable")

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
