"""The gRPC side of the operator: hub, streams, ledger and debounced pushes, wired.

Kept apart from kopf so that component tests and the benchmark can run a
real control plane (real gRPC, real TLS) with any identifier and any ledger
API, and the operator's ``main`` composes it with the watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from .discovery.debounce import debounce
from .discovery.hub import Hub, Rejection
from .discovery.identity import Identifier
from .discovery.service import DiscoveryService
from .metrics import OperatorMetrics
from .resources import BudgetObject
from .settings import Settings
from .tls import ServerTls
from .usage.ledger import Ledger, LedgerApi
from .usage.service import FeedbackHook, UsageService
from .world import World

__all__ = ["ControlPlane"]

log = logging.getLogger(__name__)


class ControlPlane:
    def __init__(
        self,
        settings: Settings,
        world: World,
        identifier: Identifier,
        ledger_api: LedgerApi,
        tls: ServerTls | None,
        metrics: OperatorMetrics | None = None,
        on_feedback: FeedbackHook | None = None,
    ) -> None:
        self.settings = settings
        self.world = world
        self.metrics = metrics or OperatorMetrics()
        self.tls = tls
        self.policy_dirty = asyncio.Event()
        self.hub = Hub(
            world,
            self.metrics,
            on_rejection=self._on_rejection,
            budget_interval=settings.budget_push_interval,
            budget_rate=settings.budget_push_rate,
            replicas=settings.replicas,
        )
        self.ledger = Ledger(
            ledger_api,
            find_budget=world.budget_for,
            on_written=self._budget_written,
            on_conflict=self.metrics.status_conflicts.inc,
            on_counted=self.metrics.usage_records.inc,
            on_commit=self._on_commit,
        )
        self.discovery = DiscoveryService(self.hub, identifier, self.metrics)
        self.usage = UsageService(self.hub, identifier, self.ledger, self.metrics, on_feedback)
        self._changes: asyncio.Queue[str] = asyncio.Queue()
        self._server: grpc.aio.Server | None = None
        self._debouncer: asyncio.Task[None] | None = None
        self.port = 0

    def _on_commit(self, batches: int, seconds: float) -> None:
        self.metrics.usage_commit_batches.observe(batches)
        self.metrics.usage_commit_seconds.observe(seconds)

    def changed(self, namespace: str) -> None:
        """Something in ``namespace`` changed; its sidecars get a (debounced) push."""
        self._changes.put_nowait(namespace)

    async def _push(self, namespaces: set[str]) -> None:
        self.hub.namespaces_changed(namespaces)
        self.policy_dirty.set()

    def _on_rejection(self, policy: str, rejection: Rejection) -> None:
        log.warning("sidecar %s rejected %s: %s", rejection.sidecar, policy, rejection.message)
        self.policy_dirty.set()

    async def _budget_written(self, budget: BudgetObject) -> None:
        # Budget state reaches the team's sidecars without waiting for the watch echo.
        body = {
            "kind": "TeamBudget",
            "metadata": {
                "namespace": budget.namespace,
                "name": budget.name,
                "generation": budget.generation,
                "creationTimestamp": budget.created,
            },
            "spec": budget.spec.model_dump(by_alias=True, exclude_none=True),
            "status": budget.status.model_dump(by_alias=True, exclude_none=True),
        }
        self.world.upsert(body)
        self.budget_moved(budget.namespace, budget.spec.team)

    def budget_moved(self, namespace: str, team: str) -> None:
        """Only a TeamBudget's spend changed: its team's sidecars get a (paced) BudgetState.

        Not ``changed``: that re-evaluates every sidecar of the namespace and every
        object's conditions, none of which depend on spend.
        """
        self.hub.wake_team(namespace, team)

    async def start(self) -> int:
        server = grpc.aio.server(
            options=[
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.max_concurrent_streams", 4096),
                # grpc.aio accepts incoming calls one at a time; under a burst (every
                # sidecar reconnecting after a restart: two streams each) core's default
                # of 1,000 unaccepted calls made it cancel new streams at random.
                ("grpc.server.max_pending_requests", 20_000),
                # Sidecars ping every 20 s (keepalive); core's default minimum of 5 min
                # answered that with GOAWAY "too many pings", dropping every stream.
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.server.max_pending_requests_hard_limit", 40_000),
                # A call the application has not accepted within this many seconds is
                # cancelled by core (default 30 s). grpc.aio accepts one call per loop
                # turn, so a busy operator facing a reconnect wave of 1,000 sidecars
                # cancelled streams that then reconnected, which kept it busy (the scale
                # benchmark's usage phase: 445 stream retries, 382 records/s at 500
                # sidecars with grpcio 1.85). Streams wait instead; ACK timing is the
                # sidecars' concern (they keep unacknowledged batches).
                ("grpc.server_max_unrequested_time_in_server", 600),
            ]
        )
        server.add_generic_rpc_handlers([self.discovery.handler(), self.usage.handler()])
        address = self.settings.grpc_address
        if self.tls is not None:
            creds = grpc.ssl_server_credentials([(self.tls.key_pem, self.tls.cert_pem)])
            self.port = server.add_secure_port(address, creds)
        else:
            self.port = server.add_insecure_port(address)
        await server.start()
        self._server = server
        self._debouncer = asyncio.create_task(
            debounce(
                self._changes,
                self._push,
                self.settings.debounce_quiet,
                self.settings.debounce_max,
            ),
            name="debounce",
        )
        log.info("control plane listening on port %d", self.port)
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        if self._debouncer is not None:
            self._debouncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._debouncer
        if self._server is not None:
            await self._server.stop(grace)
        await self.ledger.close()
