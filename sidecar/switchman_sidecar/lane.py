"""The native lane: the common request served end to end in Rust (``native/src/lane.rs``).

Why: on the request path, the Python pipeline costs ~100-250 µs of CPU per
request on a shared two-core host (the interpreter's code and data come back
from memory after every idle gap), where nginx costs ~50. The lane is a thread
of the compiled module with its own epoll loop that accepts on the sidecar's
port and serves, with no Python on the path, the request a table without
policy features reduces to: a ``POST /v1/chat/completions`` (whole or
streamed) for a model it names (or an alias of one). Everything else (other APIs, odd HTTP,
invalid JSON, unknown models, failed attempts) is handed to the Python server
with the connection, which keeps it.

What the lane may serve is decided here, per table (``routes``):

* the table has no rules, no shadow model and no PII policy (each reads or
  changes a request), and the team's budget state, if any, is Ok, under its
  soft threshold and token limit (``BudgetGate.plainly_open``); the lane then
  holds a credit on it (``_grant``), so the budget holds as on the Python path;
* per name a client may use (a model, or an alias of one): the router's
  decision for it ``requested`` or ``alias`` with nothing added, and for the
  model it names an OpenAI-family adapter, an ``http://`` endpoint (TLS stays in
  Python), no RPM/TPM limits, and its circuit breaker closed. The
  client's bytes go upstream as they came, the ``model`` value replaced by the
  upstream's name where the two differ (the Python path re-encodes the body
  then, with the same content).

After the client has its answer, the lane's ``done`` event comes here and the
request is settled by ``Pipeline.finish`` like any other: cost, budget,
metrics, the routing feedback, the access line, one usage record. A failed
attempt (connect error, reset, timeout, a status other than 200) is handed
over before anything reached the client; the Python path then runs the
request as if it had just arrived (its failover, retries and breaker), and the
lane leaves that model alone for ``PAUSE_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import time
from typing import Any

from switchman_protocol.v1 import usage_pb2
from switchman_sidecar import pipeline as pipeline_mod
from switchman_sidecar.adapters.openai import OpenAIAdapter
from switchman_sidecar.budget import Admission, BudgetGate
from switchman_sidecar.compiled import native
from switchman_sidecar.http.client import UpstreamClient
from switchman_sidecar.http.server import Handler, HttpServer, ServerLimits
from switchman_sidecar.pipeline import Exchange, Pipeline, PriorAttempt
from switchman_sidecar.route_request import LazyPromptRequest
from switchman_sidecar.routing.types import RouteDecision
from switchman_sidecar.table import CompiledTable, ModelFacts, TableStore
from switchman_sidecar.usage import Usage

__all__ = ["PAUSE_S", "NativeLane", "available"]

_OUTCOMES = {
    "success": usage_pb2.OUTCOME_SUCCESS,
    "upstream_error": usage_pb2.OUTCOME_UPSTREAM_ERROR,
    "client_aborted": usage_pb2.OUTCOME_CLIENT_ABORTED,
}

log = logging.getLogger("switchman.lane")

PAUSE_S = 5.0
"""How long the lane leaves a model alone after an attempt on it failed."""


def available() -> bool:
    """The compiled module has the lane (an older build or none: the Python server)."""
    return native is not None and hasattr(native, "Lane")


class NativeLane:
    """Owns the lane thread: its routes, its events, the connections it hands over."""

    def __init__(
        self,
        pipeline: Pipeline,
        store: TableStore,
        budget: BudgetGate,
        client: UpstreamClient,
    ) -> None:
        self._pipeline = pipeline
        self._store = store
        self._budget = budget
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        assert native is not None
        self._lane = native.Lane(self._write_fd, pipeline.settings.lane_settle_ms / 1000)
        self._server: HttpServer | None = None
        self._fallback: socket.socket | None = None
        self._facts: dict[str, ModelFacts] = {}
        self._decisions: dict[str, RouteDecision] = {}
        """Per name the lane has served under: settles its answers (entries are
        replaced by later tables, never dropped, so an answer in flight across a
        table change or a pause still finds its prices)."""
        self._routes: list[str] = []
        """The names the lane serves now."""
        self._credit: Admission | None = None
        """The lane's credit on the team's budget, reserved in the gate (``_grant``)."""
        self._granted = 0.0
        self._paused: dict[str, float] = {}
        self._addresses: dict[str, str] = {}
        """Host name → IP address (resolved off the loop; the lane connects to IPs)."""
        self._resolving: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.served = 0
        """Requests the lane answered."""
        self.handed_over = 0
        """Connections it gave to the Python server."""
        self.failed_attempts = 0
        self.dead = ""
        """Why the lane thread stopped, if it did (the Python server took the port)."""
        self._closed = False
        self._drained = False

    async def start(
        self, handler: Handler, host: str, port: int, limits: ServerLimits
    ) -> HttpServer:
        sock = socket.create_server((host, port), backlog=1024)
        sock.setblocking(False)
        bound = int(sock.getsockname()[1])
        # A second handle on the listening socket: if the lane thread ever stops,
        # the Python server accepts on it instead (``_dead``).
        self._fallback = sock.dup()
        server = HttpServer(server=None, host=host, port=bound, handler=handler, limits=limits)
        self._server = server
        self._loop.add_reader(self._read_fd, self._drain)
        self._store.on_apply.append(self._applied)
        self._budget.on_update.append(self.refresh)
        self._budget.reclaim = self._reclaim
        self.refresh()
        self._lane.start(
            sock.detach(),
            limits.max_body_bytes,
            limits.header_timeout_s,
            limits.keepalive_timeout_s,
            pipeline_mod._BOOT,
        )
        return server

    # routes -------------------------------------------------------------
    def _applied(self, _table: CompiledTable) -> None:
        self._addresses.clear()
        self.refresh()

    def refresh(self) -> None:
        """Publishes what the lane may serve now (see the module's doc)."""
        table = self._store.current
        if (
            table is None
            or not self._budget.plainly_open(table.team)
            or table.pii.enabled
            or len(table.table.rules) > 0
            or table.router.shadow is not None
        ):
            self._routes = []
            self._lane.set_routes(None, [])
            self._release_credit()
            return
        now = time.monotonic()
        routes = []
        for name in [*table.facts, *table.table.aliases]:
            entry = self._route(table, name)
            if entry is None:
                continue
            route, fact, decision = entry
            # Kept for answers still in flight even while the model is paused.
            self._facts[name] = fact
            self._decisions[name] = decision
            if self._paused.get(fact.name, 0.0) <= now:
                routes.append(route)
        self._routes = sorted(route[0] for route in routes)
        self._grant(table.team)
        self._lane.set_routes(routes, list(self._pipeline.settings.forward_header_prefixes))

    # budget ---------------------------------------------------------------
    def _grant(self, team: str) -> None:
        """Gives the lane a credit on the team's budget: half of what this sidecar
        may still commit, reserved in the gate like one request's worst case.

        The lane admits a request while its worst case fits in what is left of the
        credit (less the worst cases in flight) and hands it to Python otherwise;
        each answer's cost moves from the credit's reservation to the gate's
        spend. A new state (or the credit running low) replaces the credit; the
        requests in flight stay held against the new one. When the gate lacks
        headroom for a request, it takes back the unused credit first
        (``_reclaim``): the two paths never leave budget unused between them."""
        self._release_credit()
        gate = self._budget
        state = gate.state
        if state is None or (state.team and team and state.team != team):
            self._lane.set_credit(None)  # nothing to hold, as ``BudgetGate.admit``
            return
        headroom = gate.headroom() or 0.0
        grant = headroom / 2
        if grant <= 0:
            self._lane.set_credit(0.0)  # every request goes to Python, which refuses
            return
        self._credit = gate.admit(team, grant)
        self._granted = grant
        self._lane.set_credit(grant if self._credit.allowed else 0.0)

    def _release_credit(self) -> None:
        if self._credit is not None:
            self._budget.settle(self._credit, 0.0)  # what is left of it
            self._credit = None

    def _reclaim(self) -> None:
        """The gate needs headroom (a request the lane could not fit, or one it
        never serves): the part of the credit no request in flight holds goes
        back; the lane waits for its next grant (a state, or its next answer)."""
        credit = self._credit
        if credit is None:
            return
        freed = min(self._lane.reclaim(), credit.reservation)
        credit.reservation -= freed
        self._budget.reserved = max(0.0, self._budget.reserved - freed)

    def _spent(self, cost: float) -> None:
        """A lane answer's cost (already the gate's spend, by ``Pipeline.finish``)
        is no longer part of the credit's reservation."""
        credit = self._credit
        if credit is None or cost <= 0:
            return
        take = min(credit.reservation, cost)
        credit.reservation -= take
        self._budget.reserved = max(0.0, self._budget.reserved - take)
        if credit.reservation < self._granted / 4 and self._store.current is not None:
            self._grant(self._store.current.team)

    def _route(
        self, table: CompiledTable, name: str
    ) -> tuple[tuple[Any, ...], ModelFacts, RouteDecision] | None:
        """What the lane needs to serve requests naming ``name`` (a model, or an
        alias of one), or None when the Python path must."""
        decision = table.router.decide(LazyPromptRequest(None, model=name, api="chat"))
        if (
            decision.reason not in ("requested", "alias")
            or not decision.candidates
            or (decision.reason == "requested" and decision.candidates[0] != name)
            or decision.reject
            or decision.max_output_tokens
            or decision.shadow_model
            or decision.cascade_plan is not None
            or decision.ensemble_plan is not None
            or decision.score is not None
        ):
            return None
        fact = table.facts.get(decision.candidates[0])
        if fact is None:
            return None
        model = fact.model
        origin = fact.origin
        adapter = fact.adapter
        if (
            origin.scheme != "http"
            or fact.limited
            # The OpenAI adapter's own request and answer handling (Azure's differs in
            # its target and key header only, which ``chat_call`` gives below).
            or type(adapter).chat_call is not OpenAIAdapter.chat_call
            or type(adapter).chat_result is not OpenAIAdapter.chat_result
            or "chat" not in adapter.supports
            or self._store.breakers.get(fact.endpoint).state != "closed"
        ):
            return None
        ip = self._address(origin.host)
        if ip is None:
            return None
        upstream = model.upstream_model or model.name
        call = adapter.chat_call(model, origin, {"model": upstream}, False, b"")
        head = self._client.request_head("POST", origin, call.target, call.headers)
        probe = Exchange(api="chat", request_id="")
        probe.decision = decision
        probe.answered_by(fact)
        # The decision lines the Python path sends, less its first (the request id).
        tail = probe.decision_lines().split(b"\r\n", 1)[1]
        route = (
            name,
            fact.name,
            upstream,
            ip,
            origin.port,
            head,
            tail,
            (fact.input_price, fact.cached_price, fact.output_price),
            fact.context_window,
            min(table.policy.per_try_timeout_s, table.policy.total_timeout_s),
            [
                (f.input_price, f.output_price, f.max_output_tokens)
                for f in (table.facts[n] for n in decision.candidates if n in table.facts)
            ],
        )
        return route, fact, decision

    def _address(self, host: str) -> str | None:
        if host == "localhost":
            return "127.0.0.1"
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
        ip = self._addresses.get(host)
        if ip is None and host not in self._resolving:
            self._resolving.add(host)
            self._spawn(self._resolve(host))
        return ip

    async def _resolve(self, host: str) -> None:
        try:
            infos = await self._loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            infos = []
        finally:
            self._resolving.discard(host)
        if infos:
            self._addresses[host] = str(infos[0][4][0])
            self.refresh()

    # events -------------------------------------------------------------
    def _drain(self) -> None:
        if self._drained:
            return  # closed: everything was settled
        with contextlib.suppress(BlockingIOError):
            os.read(self._read_fd, 4096)
        for event in self._lane.take():
            kind = event[0]
            try:
                if kind == "done":
                    self._done(event)
                elif kind == "handoff":
                    self._handoff(event)
                else:
                    self._dead(event[1])
            except Exception:
                log.exception("native lane event failed")

    def _done(self, event: tuple[Any, ...]) -> None:
        (
            _,
            request_id,
            requested,
            inp,
            cached,
            out,
            reasoning,
            estimated,
            input_estimate,
            status,
            outcome,
            streamed,
            mid_stream,
            started,
            upstream_ms,
        ) = event
        self.served += 1
        table = self._store.current
        ex = Exchange(api="chat", request_id=request_id, started=started)
        ex.table = table
        ex.requested = requested
        ex.input_estimate = input_estimate
        ex.attempts = 1
        fact = self._facts.get(requested)
        if fact is not None:
            ex.decision = self._decisions.get(requested)
            ex.answered_by(fact)
            if table is not None:
                # What ``Pipeline.failover`` does after an answered attempt.
                self._store.breakers.get(fact.endpoint).record(True, table.policy, 0.0)
                table.router.start(fact.name)
                table.router.observe(fact.name, upstream_ms, True)
        ex.usage = Usage(inp, cached, out, reasoning, estimated)
        ex.outcome = _OUTCOMES[outcome]
        ex.streamed = streamed
        ex.status = status
        if mid_stream:
            self._pipeline.metrics.upstream_failures.labels(requested, "mid-stream").inc()
        self._pipeline.finish(ex)
        self._spent(ex.cost)

    def _handoff(self, event: tuple[Any, ...]) -> None:
        _, fd, data, failure = event
        self.handed_over += 1
        sock = socket.socket(fileno=fd)
        prior = None
        if failure is not None:
            model, cause, status, headers, body = failure
            prior = PriorAttempt(model, cause, status, dict(headers), body)
            self.failed_attempts += 1
            if cause != "http" or status >= 500 or status in (408, 429):
                self._pause(model)  # the endpoint's trouble, not the request's
        server = self._server
        if server is None:
            sock.close()
            return
        self._spawn(server.adopt(sock, data, prior))

    def _pause(self, model: str) -> None:
        self._paused[model] = time.monotonic() + PAUSE_S
        self.refresh()
        self._loop.call_later(PAUSE_S + 0.01, self.refresh)

    def _dead(self, why: str) -> None:
        self.dead = why or "stopped"
        log.error("the native lane stopped (%s): the Python server takes the port", self.dead)
        if self._fallback is not None and self._server is not None:
            sock, self._fallback = self._fallback, None
            self._spawn(self._server.listen(sock))

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def settle(self, timeout_s: float = 2.0) -> None:
        """Settles every request the lane has answered so far (blocking, briefly).

        The lane queues a request's usage just after the client's answer, so a
        client can see its answer a few microseconds before the record exists;
        tests (and anything that reads the records right after an answer) call
        this first."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._drain()
            if self._lane.busy() == 0 or time.monotonic() > deadline:
                self._drain()
                return
            time.sleep(0.0005)

    def stats(self) -> dict[str, Any]:
        self._drain()  # what finished and waits for its batch counts too
        return {
            "served": self.served,
            "handed_over": self.handed_over,
            "failed_attempts": self.failed_attempts,
            "routes": list(self._routes),
            "dead": self.dead or None,
        }

    async def close(self, grace_s: float = 5.0) -> None:
        """Stops accepting; answers in flight get ``grace_s``; their events are settled."""
        if self._closed:
            return
        self._closed = True
        self._lane.stop(grace_s)
        await asyncio.to_thread(self._lane.join)  # the thread ends within grace_s
        self._drain()
        self._drained = True
        self._loop.remove_reader(self._read_fd)
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        os.close(self._read_fd)
        os.close(self._write_fd)
        if self._fallback is not None:
            self._fallback.close()
            self._fallback = None
        if self._applied in self._store.on_apply:
            self._store.on_apply.remove(self._applied)
        if self.refresh in self._budget.on_update:
            self._budget.on_update.remove(self.refresh)
        if self._budget.reclaim == self._reclaim:
            self._budget.reclaim = None
        self._release_credit()
